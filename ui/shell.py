"""The whole Blocks app: tabs in the order a visitor meets them, plus API-only endpoints."""
from __future__ import annotations

import gradio as gr

from services.container import Services

from . import advanced, characters, chat, compare, projects, credits, edit, figures_custom, figures_library, figures_quick, group, history, jobs, remix, research, session, text_mode, text_video, video
from .errors import keep_pages
from .api import api

TITLE = "Character Playground"


def preview_banner(services: Services) -> str:
    previews = services.catalogue.preview_names()
    if not previews:
        return ""
    return (
        "> ⚠️ **Offline preview.** Real weights for "
        + ("these models" if len(previews) > 1 else previews[0])
        + " are not on this machine, so outputs come from tiny random stand-in models of the same architecture: "
        "**outputs are noise**. Everything else (prompts, sizes, seeds, files, metadata) works as it will with real weights."
    )


def build_app(services: Services) -> gr.Blocks:
    keep_s = services.safety_file.uploads.keep_minutes * 60
    # Uploads and gradio's copies of outputs are swept from its temp folder once they are older than keep_minutes.
    with gr.Blocks(title=TITLE, delete_cache=(max(60, keep_s // 4), keep_s)) as demo:
        gr.Markdown(f"# {TITLE}\nCreate consistent AI characters: figures, images and video.")
        gr.Markdown(preview_banner(services), elem_id="preview-banner")
        if services.safety.name == "none":
            gr.Markdown(
                "> ⚠️ **No output safety check is installed**: outputs are recorded as unchecked. "
                "Install the default check (`pip install -r requirements.txt`: open_nsfw) and leave `PLAYGROUND_SAFETY` at auto.",
                elem_id="safety-banner",
            )
        current = session.build(services, demo)
        current_figure = gr.State(None)  # the figure picked in All Figures, for Remix / Video / Characters
        chat_with = gr.State(None)  # a character to chat with, set by the Catalogue's Chat button (ui/chat.py)
        with gr.Tabs() as main_tabs:
            with gr.Tab("Figures", id="figures"):
                with gr.Tabs():
                    with gr.Tab("Quick", id="figures-quick"):
                        figures_quick.build(services, demo, current)
                    with gr.Tab("Custom", id="figures-custom"):
                        figures_custom.build(services, demo, current)
                    with gr.Tab("All Figures", id="figures-all") as all_figures_tab:
                        library_slot = gr.Column()
            with gr.Tab("Images", id="images"):
                with gr.Tabs() as image_tabs:
                    with gr.Tab("Text", id="images-text"):
                        text = text_mode.build(services, demo, current)
                    with gr.Tab("Advanced", id="images-advanced") as advanced_tab:
                        advanced.build(services, demo, current, advanced_tab, current_figure)
                    with gr.Tab("Figure Remix", id="images-remix") as remix_tab:
                        remix.build(services, demo, current, remix_tab, current_figure)
                    with gr.Tab("Edit", id="images-edit") as edit_tab:
                        edit.build(services, demo, current, edit_tab)
                    with gr.Tab("Group", id="images-group") as group_tab:
                        group.build(services, demo, current, group_tab)
            with gr.Tab("Video", id="video"):
                with gr.Tabs() as video_tabs:
                    figure_video_tab = gr.Tab("Figure to Video", id="video-figure")
                    image_video_tab = gr.Tab("Image to Video", id="video-image")
                    text_video_tab = gr.Tab("Text to Video", id="video-text")
                    video.build(services, demo, current, figure_video_tab, image_video_tab, current_figure)
                    text_video.build(services, current, text_video_tab)
            with gr.Tab("Characters", id="characters") as characters_tab:
                characters.build(services, demo, current, characters_tab, current_figure, chat_with)
            with gr.Tab("Chat", id="chat") as chat_tab:
                chat.build(services, demo, current, chat_tab, chat_with, main_tabs)
            with gr.Tab("Projects", id="projects") as projects_tab:
                projects.build(services, demo, current, projects_tab)
            with gr.Tab("Compare", id="compare") as compare_tab:
                compare.build(services, demo, current, compare_tab)
            with gr.Tab("Research", id="research") as research_tab:
                grid_list, research_tabs = research.build(services, demo, current, research_tab, current_figure)
            with gr.Tab("History", id="history") as history_tab:
                history.build(services, demo, current, history_tab, text, {"main": main_tabs, "images": image_tabs})
                research.history_grids(services, current, history_tab, grid_list, {"main": main_tabs, "research": research_tabs})
            with gr.Tab("Credits", id="credits") as credits_tab:
                credits.build(services, demo, current, credits_tab)
        with library_slot:  # built last: its actions switch to tabs defined above
            figures_library.build(
                services, demo, current, all_figures_tab,
                {"main": main_tabs, "images": image_tabs, "video": video_tabs}, current_figure,
            )

        def models() -> list[dict]:
            """The model registry as JSON: tasks, sizes, prices, licence flags, and whether weights or the preview run."""
            return services.catalogue.models()

        api(services, models, api_name="models")
        jobs.register(services)
    keep_pages(demo)  # a visitor's mistake in any UI event is a toast; every output stays as it was
    name_tools_after_endpoints(demo)
    return demo


def name_tools_after_endpoints(demo: gr.Blocks) -> None:
    """gradio names an MCP tool after its function (gradio/mcp.py get_tool_to_endpoint): each public function takes
    its endpoint's name, so the MCP tools are exactly the README's endpoints (`characters`, not `characters_mine`)."""
    for block_fn in demo.fns.values():
        if block_fn.api_visibility == "public" and block_fn.fn is not None and block_fn.api_name:
            try:
                block_fn.fn.__name__ = block_fn.api_name
            except (AttributeError, TypeError):  # a bound method or builtin: gradio then uses its own name
                pass
