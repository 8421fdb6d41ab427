"""All Figures › a figure › Identity: the identity monitor's view of one figure. Every output made from it (Remix,
Advanced, Group, Edit, video first frames, a character's main image) with its SimRef, the likeness of its face to the
canonical face, lowest first; copy-paste flags; and, for a picked output, its chain of edits back to the canonical image.
Endpoints: /figure_identity (the list, paged) and /identity_chain (an output's chain)."""
from __future__ import annotations

import gradio as gr

from services.container import Services

from .api import api, required
from .errors import clicked, user_errors
from .session import SessionUI, account_for
from .text import md


def score_label(value: float | None) -> str:
    return "no face" if value is None else f"{value:.3f}"


def caption(item: dict) -> str:
    """A thumbnail's caption, short enough to show whole: the score (or why there is none), the flag, the surface."""
    if item["sim_ref"] is None:
        return f"{item['note'] or 'no face'} · {item['surface']}"
    flag = "⚠ copy-paste" if item["copy_paste"] else "SimRef"
    return f"{flag} {item['sim_ref']:.3f} · {item['surface']}"


def summary(listing: dict) -> str:
    """What the list shows, in a visitor's words, with the calibration it is read against."""
    if not listing["engines"]:
        return "Identity monitor off: no face engine is installed (requirements.txt brings dlib)."
    kind = listing["engines"][0] if listing["engine"] and not listing["engine"].startswith("insightface") else "arcface"
    line = listing["calibration"].get(kind, {})
    if not listing["total"]:
        return ("No outputs of this figure yet. Each Remix, Advanced, Group, Edit or video made from it will appear here "
                "with its SimRef, the likeness of its face to the canonical face.")
    lines = [f"**{listing['total']} output(s)** made from this figure, lowest SimRef first (the likeness of each face to "
             f"the canonical face, by {md(line.get('label', listing['engine']))}: 1.0 is the reference itself; two real photos of "
             f"one person score about {line.get('same_person_typical', 0):.2f}; below {line.get('same_person', 0):.2f} reads "
             "as another person)."]
    if listing["copy_paste"]:
        lines.append(f"⚠️ **{listing['copy_paste']} look copy-pasted**: SimRef at or above {line.get('copy_paste', 0):.2f}, "
                     "closer to the reference than two real photos of one person get — the model likely copied the face.")
    if listing["no_face"]:
        lines.append(f"{listing['no_face']} without a face found (listed last).")
    if listing["pages"] > 1:
        lines.append(f"Page {listing['page']} of {listing['pages']}.")
    lines.append("Click an output to see its chain of edits back to the canonical image.")
    return "  \n".join(lines)


def chain_text(chain: dict) -> str:
    parts = []
    for step in chain["steps"]:
        score = step["sim_ref"]["score"] if step["sim_ref"] else None
        name = "canonical" if step["kind"] == "canonical" else ("re-anchored edit" if step["reanchored"] else step["kind"])
        parts.append(f"{name} {score_label(score) if score is not None else '(no face)'}")
    last = chain["steps"][-1]
    drift = f" — drift from the canonical face {last['drift']:.3f}" if last.get("drift") is not None else ""
    return "**Chain:** " + " → ".join(parts) + drift


def build(services: Services, session: SessionUI, current_figure: gr.State) -> None:
    with gr.Accordion("Identity — this figure's outputs by likeness, lowest first", open=True, elem_id="identity-box"):
        notice = gr.Markdown("", elem_id="identity-summary")
        gallery = gr.Gallery(fit_columns=False, label="Outputs, lowest SimRef first", columns=5, height=300, format="png",
                             type="filepath", allow_preview=False, elem_id="identity-gallery")
        with gr.Row():
            previous = gr.Button("◀ Previous page", size="sm", interactive=False, elem_id="identity-previous")
            refresh = gr.Button("Refresh", size="sm", elem_id="identity-refresh")
            following = gr.Button("Next page ▶", size="sm", interactive=False, elem_id="identity-next")
        chain = gr.Markdown("", elem_id="identity-chain")
    page = gr.State(1)
    rows = gr.State([])

    @user_errors
    def show(figure_id: str | None, wanted: int, token: str, profile: gr.OAuthProfile | None = None):
        if not figure_id:
            return "", [], [], 1, "", gr.Button(interactive=False), gr.Button(interactive=False)
        listing = services.monitor.figure_outputs(account_for(services, token, profile), figure_id, max(1, int(wanted or 1)))
        if listing["total"] and not listing["outputs"]:  # past the last page
            listing = services.monitor.figure_outputs(account_for(services, token, profile), figure_id, listing["pages"])
        pictures = [(o["file"], caption(o)) for o in listing["outputs"]]
        found = [{"request_id": o["request_id"], "index": o["index"]} for o in listing["outputs"]]
        return (summary(listing), pictures, found, listing["page"], "", gr.Button(interactive=listing["page"] > 1),
                gr.Button(interactive=listing["page"] < listing["pages"]))

    def first(figure_id: str | None, token: str, profile: gr.OAuthProfile | None = None):
        return show(figure_id, 1, token, profile)

    def earlier(figure_id: str | None, at: int, token: str, profile: gr.OAuthProfile | None = None):
        return show(figure_id, max(1, int(at or 1) - 1), token, profile)

    def later(figure_id: str | None, at: int, token: str, profile: gr.OAuthProfile | None = None):
        return show(figure_id, int(at or 1) + 1, token, profile)

    outputs = [notice, gallery, rows, page, chain, previous, following]
    current_figure.change(first, [current_figure, session.token], outputs, api_visibility="private")
    refresh.click(show, [current_figure, page, session.token], outputs, api_visibility="private")
    previous.click(earlier, [current_figure, page, session.token], outputs, api_visibility="private")
    following.click(later, [current_figure, page, session.token], outputs, api_visibility="private")

    @user_errors
    def on_pick(found: list[dict], token: str, evt: gr.SelectData, profile: gr.OAuthProfile | None = None):
        row = clicked(found, evt)
        return chain_text(services.monitor.chain(account_for(services, token, profile), row["request_id"], row["index"]))

    gallery.select(on_pick, [rows, session.token], [chain], api_visibility="private")

    # -- API -------------------------------------------------------------------------------------------
    @user_errors
    def figure_identity(token: str = "", figure_id: str = "", page: int = 1, profile: gr.OAuthProfile | None = None) -> dict:
        """The identity monitor's figure page: every output made from one of your figures (Remix, Advanced, Group, Edit,
        video first frames) with its SimRef (the likeness of its face to the canonical face: dlib on the default install,
        and ArcFace with a face pack), lowest first, outputs without a face last, a page at a time; `copy_paste` marks
        outputs closer to the reference than two real photos of one person (presets/identity.toml; `calibration`).

        Args:
            token: your session token from /session_start.
            figure_id: one of your figures (see /figures).
            page: which page, from 1 (`pages` says how many).
        """
        required(figure_id=figure_id)
        return services.monitor.figure_outputs(account_for(services, token, profile), figure_id, int(page or 1))

    @user_errors
    def identity_chain(token: str = "", request_id: str = "", index: int = 0, profile: gr.OAuthProfile | None = None) -> dict:
        """An output of one of your figures back to the canonical image: each step (the canonical image, the output the
        edits started from, each edit) with its SimRef against the canonical face, its `drift` (1 - SimRef) and its
        `change` from the step before. A re-anchored edit (/edit_image with reanchor) starts again at the canonical image.

        Args:
            token: your session token from /session_start.
            request_id: one of your generations made from a figure (an edit, a Remix, a group image...).
            index: which of its images, from 0.
        """
        required(request_id=request_id)
        return services.monitor.chain(account_for(services, token, profile), request_id, int(index or 0))

    api(services, figure_identity, api_name="figure_identity")
    api(services, identity_chain, api_name="identity_chain")
