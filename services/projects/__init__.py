"""Projects (seed 003): a small team's shared work. It owns the projects tables (services/accounts/project_tables.py):
projects and members (membership.py; a non-member reads nothing), cards with drafts and settings, directions (forks)
and what a member does to a version (cards.py), refs (refs.py), scenes and their pools (scenes.py), generation: every
version a paid run through the one runner, uploads of your own versions (generation.py), the feed, showcase and
search (feed.py), and the refine chat (refine_chat.py; the offline refiner over presets/refiner.toml: refiner.py).
Model classes and limits: presets/projects.toml (settings.py)."""
from .access import ProjectError
from .service import Projects
from .settings import ProjectSettings, load_project_settings

__all__ = ["ProjectError", "ProjectSettings", "Projects", "load_project_settings"]
