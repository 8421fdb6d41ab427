"""The domain layer; imports the pipeline layer, never gradio.

- `accounts/`: database, migrations, ledger, the jobs transaction, identity, plans, instances, history.
- `runs/`: how a request pays: the `PaidRun` description and the one `Runner` that executes every paid request.
- `creation/`: the surfaces (text, figures, characters, remix/edit/group, video, compare) and their presets.
- `safety/`: prompt policy, output check, uploads.
- `media/`: storage, PNG metadata, MP4.
- `faces/`: the face engine.
- `catalogue`: the read-only view of models, tasks, sizes, prices and weights status that the UI uses.
- `errors`: `UserError`, the one base class of every message meant for the visitor.
- `config`, `container`: settings, and the wiring of all of the above.
"""
