"""The Kaggle backend: the backend itself (backend.py), the official client made fit for a worker (client.py), the
names and files it pushes (kernels.py), and the kernel's bootstrap (bootstrap.py, pushed as source text)."""
