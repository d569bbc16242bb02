"""fume_edge.pipeline"""
