"""A scikit-learn training job for the image test: fits iris, saves the model, fails below 90% accuracy."""
import argparse
import os

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

parser = argparse.ArgumentParser()
parser.add_argument("--max_iter", type=int, default=500)
args = parser.parse_args()

X, y = load_iris(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
model = LogisticRegression(max_iter=args.max_iter).fit(X_train, y_train)
accuracy = model.score(X_test, y_test)
print(f"test accuracy {accuracy:.3f}")
if accuracy < 0.9:
    raise SystemExit(f"accuracy {accuracy:.3f} is below 0.9")
joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
