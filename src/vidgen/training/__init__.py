"""Training for the learned backends: data, loop, checkpoints and evaluation.

``vidgen.training.data`` turns the scene backend into (caption, clip) pairs with
a compositional held-out split; it is imported explicitly so that importing this
package stays cheap.
"""
