"""Projects and members, cards, drafts and settings (services/projects): who sees what, and optimistic drafts."""
from __future__ import annotations

import pytest

from services.projects import ProjectError


def visitor(services, ip):
    return services.identity.start(None, ip=ip).account


def test_create_rename_archive_and_the_selector(make_services):
    services = make_services()
    owner = visitor(services, "10.50.0.1")
    first = services.projects.create_project(owner, "Poster shoot")
    second = services.projects.create_project(owner, "Comic")
    assert [p["name"] for p in services.projects.projects(owner)] == ["Comic", "Poster shoot"]
    assert services.projects.rename_project(owner, first["id"], "Posters")["name"] == "Posters"
    with pytest.raises(ProjectError, match="1 to 80 characters"):
        services.projects.create_project(owner, " ")
    services.projects.archive_project(owner, second["id"])
    assert [p["name"] for p in services.projects.projects(owner)] == ["Posters"]
    assert sorted(p["archived"] for p in services.projects.projects(owner, archived=True)) == [False, True]
    with pytest.raises(ProjectError, match="archived: restore it"):
        services.projects.create_card(owner, second["id"])
    services.projects.archive_project(owner, second["id"], archived=False)
    assert services.projects.create_card(owner, second["id"])["title"] == "Card 1"
    rebuilt = make_services()  # a restart keeps it all
    assert {p["name"] for p in rebuilt.projects.projects(owner)} == {"Posters", "Comic"}


def test_members_join_by_link_or_id_leave_and_are_removed_at_once(make_services):
    services = make_services()
    owner, ana, ben = (visitor(services, f"10.50.1.{n}") for n in (1, 2, 3))
    project = services.projects.create_project(owner, "Team")
    card = services.projects.create_card(owner, project["id"], prompt="a lighthouse at dusk")
    for reader in (lambda a: services.projects.project(a, project["id"]), lambda a: services.projects.cards(a, project["id"]),
                   lambda a: services.projects.card(a, card["id"]), lambda a: services.projects.feed(a, project["id"]),
                   lambda a: services.projects.refs(a, project["id"])):
        with pytest.raises(ProjectError, match=r"^No (project|card) '"):
            reader(ana)  # a non-member sees nothing, not even that it exists
    with pytest.raises(ProjectError, match="invite link is not valid"):
        services.projects.join_project(ana, "nope")
    joined = services.projects.join_project(ana, project["invite"])
    assert joined["role"] == "member" and "invite" not in joined  # only the owner sees the link's secret
    with pytest.raises(ProjectError, match="No account"):
        services.projects.add_member(owner, project["id"], "v-unknown")
    with pytest.raises(ProjectError, match="Only the owner"):
        services.projects.add_member(ana, project["id"], ben.id)
    services.projects.add_member(owner, project["id"], ben.id)
    assert [m["role"] for m in services.projects.project(ben, project["id"])["members"]] == ["owner", "member", "member"]
    assert services.projects.card(ben, card["id"])["draft"] == "a lighthouse at dusk"
    services.projects.leave_project(ben, project["id"])
    with pytest.raises(ProjectError, match="No card"):
        services.projects.card(ben, card["id"])
    with pytest.raises(ProjectError, match="cannot leave"):
        services.projects.leave_project(owner, project["id"])
    services.projects.remove_member(owner, project["id"], ana.id)
    with pytest.raises(ProjectError, match="No card"):
        services.projects.save_draft(ana, card["id"], "mine now", 0)  # removed: at once, for writes too


def test_drafts_survive_a_restart_and_a_stale_save_is_refused_not_lost(make_services):
    services = make_services()
    owner, ana = visitor(services, "10.50.2.1"), visitor(services, "10.50.2.2")
    project = services.projects.create_project(owner, "Drafts")
    services.projects.join_project(ana, project["invite"])
    card = services.projects.create_card(owner, project["id"], title="Hero shot")
    mine = services.projects.card(owner, card["id"])
    theirs = services.projects.card(ana, card["id"])
    saved = services.projects.save_draft(ana, card["id"], "a knight in the rain", theirs["revision"])
    assert saved["revision"] == theirs["revision"] + 1
    with pytest.raises(ProjectError, match="Someone saved this card's prompt since you opened it"):
        services.projects.save_draft(owner, card["id"], "a knight in the sun", mine["revision"])
    rebuilt = make_services()
    assert rebuilt.projects.card(owner, card["id"])["draft"] == "a knight in the rain"  # nothing lost silently
    with pytest.raises(ProjectError, match="at most 2,000 characters"):
        rebuilt.projects.save_draft(owner, card["id"], "x" * 2001, saved["revision"])


def test_card_settings_are_checked(make_services):
    services = make_services()
    owner = visitor(services, "10.50.3.1")
    card = services.projects.create_card(owner, services.projects.create_project(owner, "S")["id"])
    assert card["settings"] == {"resolution": "1K", "aspect_ratio": "1:1", "model_class": "pro", "count": 1}
    changed = services.projects.card_settings(owner, card["id"], resolution="2K", aspect_ratio="16:9", model_class="flash", count=3)
    assert changed["settings"] == {"resolution": "2K", "aspect_ratio": "16:9", "model_class": "flash", "count": 3}
    for bad, match in ((dict(resolution="8K"), "Resolution is one of 1K, 2K, 4K"), (dict(count=6), "Count is one of 1, 2, 3, 4, 5"),
                       (dict(model_class="turbo"), "Model class is one of pro, flash"), (dict(aspect_ratio="2:1"), "Aspect ratio")):
        with pytest.raises(ProjectError, match=match):
            services.projects.card_settings(owner, card["id"], **bad)
