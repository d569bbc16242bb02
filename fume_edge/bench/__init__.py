"""fume_edge.bench"""
