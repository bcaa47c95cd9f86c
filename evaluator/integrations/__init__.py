"""MLflow-native entry points: the ``mlflow.models.evaluate`` plugin, the pyfunc model that serves
ranked frames, and registering evaluated models with it."""
