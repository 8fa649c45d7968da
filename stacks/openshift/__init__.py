"""The OpenShift / Kubernetes stack: what a session materialises in a cluster."""
