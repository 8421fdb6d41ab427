"""Messages that say what applies: out of credits names what would fit on that surface (fewer takes or images, a lower
resolution, a cheaper model the balance covers) and where the ledger is; every picker labels a model the same way,
and a model without its provider key is marked and never priced as runnable."""
from __future__ import annotations

import pytest

from services.accounts.ledger import InsufficientCredits
from services.catalogue import Task
from services.creation.text import TextToImageParams


def spend_to(services, account, left: int) -> None:
    change = left - services.ledger.balance(account.id)
    with services.db.begin() as conn:
        services.ledger.adjust(conn, account.id, change, "test-spend", "test: set the balance")


def test_out_of_credits_names_what_fits_on_the_surface_and_the_ledger(make_services):
    services = make_services()
    account = services.identity.start(None, ip="10.8.0.1").account
    spend_to(services, account, 3)
    with pytest.raises(InsufficientCredits) as short:  # 4 images of FLUX.1 [dev] at 4 credits: 16
        services.text.text_to_image(account, TextToImageParams("a red door", "flux.1-dev", count=4, steps=2))
    message = str(short.value)
    assert "costs 16 credits but your balance is 3" in message
    assert "fewer images" in message and "a cheaper model such as" in message and "(1 credit)" in message
    assert "Credits tab's ledger" in message and "nothing was charged" in message
    with pytest.raises(InsufficientCredits) as takes:
        services.figures.quick_takes(account, {"archetype": "artist"}, model="flux.1-dev", takes=2, steps=2)
    assert "fewer takes" in str(takes.value)
    assert services.ledger.balance(account.id) == 3


def test_pickers_label_models_alike_and_keyless_api_models_need_a_key(make_services):
    from ui.models import key_note, model_label
    from ui.text_mode import price_text

    services = make_services()
    sdxl, pro = services.catalogue.get("sdxl-base"), services.catalogue.get("flux.2-pro")
    assert model_label(services, sdxl, Task.TEXT_TO_IMAGE) == "SDXL base 1.0 · 1 credit/image · offline preview"
    label = model_label(services, pro, Task.TEXT_TO_IMAGE)
    assert "needs a provider key" in label and "credit" not in label
    assert key_note(services, sdxl) is None
    line = price_text(services, pro, 1, "1:1", "1K")
    assert "needs a provider key" in line and "credits" not in line
    non_commercial = next(e for e in services.catalogue.entries(Task.TEXT_TO_IMAGE) if e.licence.non_commercial)
    assert model_label(services, non_commercial, Task.TEXT_TO_IMAGE).endswith("non-commercial")


def test_image_pickers_label_images_by_what_they_show_never_by_id(make_services):
    services = make_services()
    account = services.identity.start(None, ip="10.8.0.2").account
    made = services.text.text_to_image(account, TextToImageParams("a lighthouse keeper at dusk, oil painting with warm window "
                                                                  "light and a long description", "sdxl-base", steps=2))
    (picked,) = services.history.images(account.id)
    assert picked.caption.startswith("a lighthouse keeper at dusk, oil painti")
    assert "SDXL base 1.0" in picked.caption and made.request_id[:8] not in picked.caption
