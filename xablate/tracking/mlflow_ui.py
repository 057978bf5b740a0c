"""`mlflow ui` whose pages open an experiment on its runs table (model training), not on the GenAI overview.

Why not the experiment tag: MLflow 3.17's UI ignores `mlflow.experimentKind`. Its experiment-kind hook reads the
tag only when a feature flag is off, and 3.17 hard-codes that flag on; the kind is then the browser's
*workflow type*: the page's `?workflowType=` parameter, else the localStorage entry `mlflow.workflowType_v1`
(written only by the sidebar's GenAI / Model training switch), else "genai". So a click on an experiment in the
experiments list opens the GenAI overview (traces, tokens) in any browser that never flipped the switch, however
the store is tagged. xablate still tags its experiments (MLflow versions that read the tag use it).

What this does: the served index.html sets that localStorage entry to "machine_learning" when the browser has
none, before MLflow's scripts run; a browser whose user chose GenAI with the switch keeps its choice.

How: `python -m xablate.tracking.mlflow_ui <mlflow ui arguments>` runs MLflow's own `mlflow ui` command (its
store checks and migrations, its uvicorn workers and job runner), with the uvicorn app
`mlflow.server.fastapi_app:app` swapped for this module's `app`: the same app, whose index page carries the
script. Should a later MLflow build its command differently, the swap does not happen, one line says so and
the plain MLflow UI is served (the browser test fails then).
"""

from __future__ import annotations

import sys

MLFLOW_APP = "mlflow.server.fastapi_app:app"
THIS_APP = "xablate.tracking.mlflow_ui:app"
WORKFLOW_STORAGE_KEY = "mlflow.workflowType_v1"  # MLflow's useLocalStorage key `${key}_v${version}`
MODEL_TRAINING = "machine_learning"
DEFAULT_SCRIPT = (
    "<script>try{if(!window.localStorage.getItem(%r))window.localStorage.setItem(%r,JSON.stringify(%r))}"
    "catch(e){}</script>" % (WORKFLOW_STORAGE_KEY, WORKFLOW_STORAGE_KEY, MODEL_TRAINING))


def index_with_default(html: str) -> str:
    """MLflow's index.html with the model-training default set before its first script."""
    return html.replace("<head>", "<head>" + DEFAULT_SCRIPT, 1) if "<head>" in html else DEFAULT_SCRIPT + html


def _serve_index():
    """MLflow's `serve` view (index.html for every page of the app) with the default added."""
    import os

    from flask import Response

    from mlflow.server import app as flask_app

    path = os.path.join(flask_app.static_folder, "index.html")
    if not os.path.exists(path):
        return _original_serve()
    with open(path, encoding="utf-8") as file:
        return Response(index_with_default(file.read()), mimetype="text/html")


_original_serve = None


def _patched_app():
    """MLflow's ASGI app, its index page serving the default (uvicorn imports `app` in each worker)."""
    global _original_serve
    from mlflow.server import app as flask_app
    from mlflow.server.fastapi_app import app as mlflow_app

    if _original_serve is None:
        _original_serve = flask_app.view_functions["serve"]
        flask_app.view_functions["serve"] = _serve_index
    return mlflow_app


def __getattr__(name: str):  # `app` is built on first use: the launcher process never imports the server
    if name == "app":
        return _patched_app()
    raise AttributeError(name)


def main(argv: list[str]) -> int:
    """Runs `mlflow <argv>` (e.g. `ui --backend-store-uri …`) with its uvicorn app swapped for `app`."""
    import mlflow.server as server
    from mlflow.cli import cli

    build = getattr(server, "_build_uvicorn_command", None)
    if build is None:
        print("xablate: this MLflow builds its server command differently; serving its UI unchanged (it may open "
              "experiments on the GenAI overview)", file=sys.stderr, flush=True)
    else:
        def swapped(*args, **kwargs):
            command = build(*args, **kwargs)
            return [THIS_APP if word == MLFLOW_APP else word for word in command]

        server._build_uvicorn_command = swapped
    return cli.main(args=argv, prog_name="mlflow", standalone_mode=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
