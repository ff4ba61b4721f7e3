"""Online serving: the registry's verified champion behind a web service, hot-swapped on promotion.

``mlbatch serve MODEL`` runs it (``mlbatch.serving.server.run``); the app is
built by ``mlbatch.serving.app.create_app``. Every call into the rest of
mlbatch goes through ``mlbatch.serving.model``. See docs/serving.md.
"""
