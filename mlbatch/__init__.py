"""mlbatch: the production half of a scikit-learn model, on Prefect (see the README).

Importing the package has no side effects: settings are read by the entry
point that builds them, and nothing here touches the environment.
"""
