"""Connection to Temporal: the embedded dev server, clusters, the data converter, search attributes."""
