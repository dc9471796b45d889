"""The generator as an MLflow pyfunc model, so it can live in the model registry.

``mlflow.pyfunc.load_model(uri).predict(df)`` returns each patient's prognostic score
(see `Generator.prognostic_score`); the saved generator folder travels as an artifact.
"""

from __future__ import annotations

import mlflow.pyfunc
import pandas as pd


class GeneratorModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from insilico.virtual_patients.generator import Generator

        self.generator = Generator.load(context.artifacts["generator"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> list[float]:
        return self.generator.prognostic_score(model_input).tolist()
