"""The generator as an MLflow pyfunc model, so it can live in the model registry.

``mlflow.pyfunc.load_model(uri).predict(df)`` returns each patient's prognostic score
(see `Generator.prognostic_score`); the saved generator folder travels as an artifact.
"""

from __future__ import annotations

import mlflow.pyfunc


class GeneratorModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from .generator import Generator

        self.generator = Generator.load(context.artifacts["generator"])

    def predict(self, context, model_input, params=None):
        import pandas as pd

        return pd.Series(self.generator.prognostic_score(model_input), name="prognostic_score")
