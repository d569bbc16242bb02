"""fume_edge.runtime"""
