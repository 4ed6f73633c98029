"""Recommender families behind one interface (see base.Recommender); one module per family."""
