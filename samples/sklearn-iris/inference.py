"""Serving the iris model trained by train.py with smhost serve (pyhandler).

Copy this file to <model dir>/code/inference.py (make-model.sh does it).  The built-in codecs decode JSON, CSV
and NPY request bodies into a numpy array, so only model_fn is needed; predict_fn shows the optional context
argument and returns class names instead of numbers.
"""
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def predict_fn(data, model, context=None):
    classes = ["setosa", "versicolor", "virginica"]
    return [classes[int(i)] for i in model.predict(data)]
