"""The classic bring-your-own serving app (AWS's scikit_bring_your_own example, container/decision_trees/
predictor.py): Flask under gunicorn behind nginx.  It serves the same inference.py smhost's pyhandler serves,
with the same CSV decoding and JSON encoding as pyhandler's built-in codecs, so the stacks differ only in the
server around the predict function."""
import io
import json
import os
import sys

import flask
import numpy as np

sys.path.insert(0, os.environ["MODEL_DIR"] + "/code")
import inference  # noqa: E402

model = inference.model_fn(os.environ["MODEL_DIR"])
app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    status = 200 if model is not None else 404
    return flask.Response(response="\n", status=status, mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def transformation():
    if flask.request.content_type != "text/csv":
        return flask.Response(response="This predictor only supports CSV data", status=415, mimetype="text/plain")
    data = np.genfromtxt(io.StringIO(flask.request.data.decode("utf-8")), delimiter=",")
    if data.ndim == 1:
        data = data.reshape(1, -1)
    predictions = inference.predict_fn(data, model)
    return flask.Response(response=json.dumps(predictions), status=200, mimetype="application/json")
