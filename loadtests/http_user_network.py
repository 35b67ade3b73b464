"""Loaded by our load test beside any locustfile (`locust -f THEIRS,this`): Locust's
`HttpUser` sets `trust_env = False` on its requests session, so a locustfile of the user's
own ignores HTTPS_PROXY and REQUESTS_CA_BUNDLE. For an https host that the environment
sends through a proxy (a company proxy, or the embedded Vertex AI's, emulator/envfile.py),
this gives every HttpUser that proxy and CA bundle; the user's file stays as it is. A
plain-http host (a model server on loopback) is left alone. Defines no User."""

import os
import urllib.request
from urllib.parse import urlsplit

from locust import HttpUser, events


@events.init.add_listener
def _apply_network_environment(environment, **_kwargs):
    host = urlsplit(environment.host or os.environ.get("VERTEX_AI_ENDPOINT_HOST", ""))
    if host.scheme != "https" or not host.hostname:
        return
    proxy = urllib.request.getproxies().get("https")
    if proxy and urllib.request.proxy_bypass(host.hostname):
        proxy = None
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    if not proxy and not bundle:
        return
    original = HttpUser.__init__
    if getattr(original, "_deploytest_network", False):
        return  # once per process

    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if proxy:
            self.client.proxies["https"] = proxy
        if bundle:
            self.client.verify = bundle

    __init__._deploytest_network = True
    HttpUser.__init__ = __init__
