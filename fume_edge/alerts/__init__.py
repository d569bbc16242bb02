"""fume_edge.alerts"""
