"""fume_edge.train"""
