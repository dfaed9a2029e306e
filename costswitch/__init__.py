"""The project package. Kept free of imports so that `costswitch.client` can be imported by services
that have only httpx; the Celery app is loaded in CostswitchConfig.ready() (and by `celery -A
costswitch`, which finds costswitch/celery.py)."""
