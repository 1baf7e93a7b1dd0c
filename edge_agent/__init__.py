"""The edge agent: the gateway daemon of one edge site."""
