"""Nightly batch scoring: the key layout, the streaming loop, the publication protocol, readers for analysts."""
