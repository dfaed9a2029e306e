from decimal import Decimal
import pytest
from tests.conftest import client_for
from tests.budgets.factories import UserFactory
from tests.models_registry.api.test_models_api import send, new_model, MODELS, gpt, openai, staff  # noqa

def test_probe(staff, gpt):
    c = client_for(staff)
    r = c.get(f"{MODELS}/GPT-4o"); print("upper", r.status_code, r["Content-Type"], r.content[:100])
    r = send(c, "post", MODELS, new_model(contextWindow=3_000_000_000)); print("bigctx", r.status_code, r.content[:300])
    r = send(c, "post", MODELS, new_model(id="x2", typicalLatencyMs=3_000_000_000)); print("biglat", r.status_code, r.content[:300])
    r = send(c, "patch", f"{MODELS}/gpt-4o", {"quality": {"code": 90}}); print("quality", r.json()["quality"])
    r = send(c, "patch", f"{MODELS}/gpt-4o", {"effectiveAt": "2030-01-01T00:00:00Z"}); print("eff only", r.status_code)
    r = send(c, "post", MODELS, new_model(id="x3", effectiveAt="2030-01-01T00:00:00Z")); print("create eff", r.status_code)
    r = send(c, "patch", f"{MODELS}/gpt-4o", {"inputPricePerMillion": Decimal("2.5000000000")}); print("trailing", r.status_code, r.content[:200])
    r = send(c, "patch", f"{MODELS}/gpt-4o", {"inputPricePerMillion": Decimal("99999999999.999999999")}); print("maxprice", r.status_code, r.content[:200])
    r = send(c, "patch", f"{MODELS}/gpt-4o", '{"inputPricePerMillion": 1e400}'); print("inf", r.status_code, r.content[:200])
    r = send(c, "patch", f"{MODELS}/gpt-4o", '{"inputPricePerMillion": 1' + '0'*5000 + '}'); print("hugeint", r.status_code, r.content[:200])
    r = send(c, "patch", f"{MODELS}/gpt-4o", {"notes": "a\x00b"}); print("nul", r.status_code, r.content[:200])
    r = send(c, "patch", f"{MODELS}/gpt-4o", {"displayName": ""}); print("blankname", r.status_code, r.content[:200])
    r = send(c, "patch", f"{MODELS}/gpt-4o", [1,2]); print("list body", r.status_code, r.content[:200])
    r = send(c, "patch", f"{MODELS}/gpt-4o", {"capabilities": None}); print("capnull", r.status_code, r.content[:200])
    r = send(c, "patch", f"{MODELS}/gpt-4o", {"capabilities": [1]}); print("caplist", r.status_code, r.content[:200])
    r = send(c, "patch", f"{MODELS}/gpt-4o", {"quality": [1]}); print("qlist", r.status_code, r.content[:200])
    r = send(c, "patch", f"{MODELS}/gpt-4o", {"fallbacks": "abc"}); print("fbstr", r.status_code, r.content[:200])
    r = c.get(f"{MODELS}?minContextWindow=99999999999999999999"); print("bigfilter", r.status_code, r.content[:200])
    r = c.get(f"{MODELS}?maxInputPrice=1e400"); print("pricefilter", r.status_code, r.content[:200])
    r = c.get(f"{MODELS}?maxInputPrice=NaN"); print("nanfilter", r.status_code, r.content[:200])
    r = c.get(f"{MODELS}?search=%00"); print("nulsearch", r.status_code, r.content[:200])
    r = c.get(f"{MODELS}?capability=,"); print("emptycap", r.status_code, r.content[:200])
    r = c.get(f"{MODELS}/gpt-4o/price-history?page=99"); print("page", r.status_code, r.content[:200])
    r = c.get(f"{MODELS}/gpt-4o.json"); print("suffix", r.status_code, r.content[:200])
