"""Checks that build and run the model before a long training: gradient checking (``gradcheck``) and
the sanity checks (``sanity``: initial loss, overfitting a small batch, real vs shuffled labels,
batch gradient descent decreasing J). They stand on the training code; ``dlrunner.diagnostics``
below it only reads results."""
