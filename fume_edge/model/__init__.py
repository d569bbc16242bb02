"""fume_edge.model"""
