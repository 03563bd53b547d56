"""``deltanet serve``: a local web playground for a trained model (the ``serve`` extra).

Draw a digit and see the probabilities, every layer's output and the saliency map (δ at the
input, one backward pass); train zoo models live and watch the loss, the validation figures,
the mean |δ| per layer and the first filters. ``convert`` turns a drawing into the model's
input as its dataset was made; ``predictor`` runs the model under a lock; ``inputs`` reads
request bodies; ``training`` runs ``deltanet train`` in a thread; ``app`` holds the routes
(``create_app``). Only ``app`` imports FastAPI: ``import deltanet`` never does.
"""
