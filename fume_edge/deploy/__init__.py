"""fume_edge.deploy"""
