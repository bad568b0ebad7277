"""The Binance endpoints this adapter calls, with their request weight and limit pool.

Weights and pools come from the reference (§2, §4): ``/api`` shares one IP pool; each
IP-limited ``/sapi`` endpoint has its own IP pool, and each UID-limited one its own UID
pool per minute (Binance's limits table). ``withdraw/history`` counts in the per-second
UID limit instead (its own page: 180,000 a second, at most 10 requests a second).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Pool(enum.StrEnum):
    API_IP = "api-ip"  # all of /api/*, 6,000/min per IP
    SAPI_IP = "sapi-ip"  # one budget per IP-limited /sapi endpoint, 12,000/min each
    SAPI_UID = "sapi-uid"  # one budget per UID-limited /sapi endpoint, 180,000/min each
    SAPI_UID_SECOND = "sapi-uid-1s"  # the account's per-second UID limit, 180,000/s


@dataclass(frozen=True, kw_only=True)
class Endpoint:
    method: str
    path: str
    weight: int
    pool: Pool
    signed: bool

    @property
    def read_only(self) -> bool:
        return self.method == "GET"

    @property
    def pool_key(self) -> str:
        """The name of the budget this endpoint draws from (a /sapi minute pool is its own)."""
        if self.pool in (Pool.SAPI_IP, Pool.SAPI_UID):
            return f"{self.pool.value}:{self.path}"
        return self.pool.value


SERVER_TIME = Endpoint(method="GET", path="/api/v3/time", weight=1, pool=Pool.API_IP, signed=False)
ACCOUNT = Endpoint(method="GET", path="/api/v3/account", weight=20, pool=Pool.API_IP, signed=True)
SYSTEM_STATUS = Endpoint(
    method="GET", path="/sapi/v1/system/status", weight=1, pool=Pool.SAPI_IP, signed=False
)
API_RESTRICTIONS = Endpoint(
    method="GET", path="/sapi/v1/account/apiRestrictions", weight=1, pool=Pool.SAPI_IP, signed=True
)
COIN_CONFIG = Endpoint(
    method="GET", path="/sapi/v1/capital/config/getall", weight=10, pool=Pool.SAPI_IP, signed=True
)
WITHDRAW_APPLY = Endpoint(
    method="POST",
    path="/sapi/v1/capital/withdraw/apply",
    weight=900,
    pool=Pool.SAPI_UID,
    signed=True,
)
WITHDRAW_HISTORY = Endpoint(
    method="GET",
    path="/sapi/v1/capital/withdraw/history",
    weight=18_000,
    pool=Pool.SAPI_UID_SECOND,
    signed=True,
)
ADDRESS_LIST = Endpoint(
    method="GET",
    path="/sapi/v1/capital/withdraw/address/list",
    weight=10,
    pool=Pool.SAPI_IP,
    signed=True,
)
# The funding wallet's balances: a POST that only reads (IP weight 1). Chosen over
# POST /sapi/v3/asset/getUserAsset (weight 5, the spot wallet) because spot balances come
# from /api/v3/account already and this is the cheapest read of the funding wallet.
FUNDING_ASSET = Endpoint(
    method="POST", path="/sapi/v1/asset/get-funding-asset", weight=1, pool=Pool.SAPI_IP, signed=True
)
ACCOUNT_STATUS = Endpoint(
    method="GET", path="/sapi/v1/account/status", weight=1, pool=Pool.SAPI_IP, signed=True
)
WITHDRAW_QUOTA = Endpoint(
    method="GET", path="/sapi/v1/capital/withdraw/quota", weight=10, pool=Pool.SAPI_IP, signed=True
)

# -- travel rule (local entities), reference §11 ---------------------------------------------
# The apply draws on its own UID minute pool (600, its page); the reads are IP weight 1,
# except history v2, which Binance's changelog (2025-01-15) moved to a UID weight: its
# own UID minute pool here, weight 1 as the page still shows.
QUESTIONNAIRE_REQUIREMENTS = Endpoint(
    method="GET",
    path="/sapi/v1/localentity/questionnaire-requirements",
    weight=1,
    pool=Pool.SAPI_IP,
    signed=True,
)
LOCAL_WITHDRAW_APPLY = Endpoint(
    method="POST",
    path="/sapi/v1/localentity/withdraw/apply",
    weight=600,
    pool=Pool.SAPI_UID,
    signed=True,
)
LOCAL_WITHDRAW_HISTORY = Endpoint(
    method="GET",
    path="/sapi/v2/localentity/withdraw/history",
    weight=1,
    pool=Pool.SAPI_UID,
    signed=True,
)
LOCAL_VASPS = Endpoint(
    method="GET", path="/sapi/v1/localentity/vasp", weight=1, pool=Pool.SAPI_IP, signed=True
)
LOCAL_COUNTRIES = Endpoint(
    method="GET", path="/sapi/v1/localentity/country/list", weight=1, pool=Pool.SAPI_IP, signed=True
)
LOCAL_REGIONS = Endpoint(
    method="GET", path="/sapi/v1/localentity/region/list", weight=1, pool=Pool.SAPI_IP, signed=True
)
