"""Chat with characters: conversations a visitor opens with a character they may open (their own, a verified public
one, an unlisted one by its id), the greeting, the random opener, persona cards, the chat models a character names,
challenge modes and their progress, pictures asked for in a chat, and the bounds on what reaches the model.

Every reply and every picture is a paid run handed to the one runner (services/runs/runner.py); this package never
reserves, stores outputs or captures on its own. It owns the `conversations` and `chat_messages` tables."""
from .service import Chats, ChatError

__all__ = ["ChatError", "Chats"]
