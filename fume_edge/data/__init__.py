"""fume_edge.data"""
