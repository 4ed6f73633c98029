"""The world the platform lives in: catalog, users, the movielog stream, metadata, faults."""
