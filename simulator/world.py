"""Vectorised generation of a synthetic shop: customers, catalog, orders, events, consent.

Everything is drawn from one ``numpy.random.Generator`` in a fixed order, so the same seed
and arguments give the same world. No per-customer Python loops: behaviour is expressed as
array operations (cumulative sums of reorder intervals, Poisson counts expanded with
``np.repeat``), which keeps a million customers to minutes.

Timestamps are integer seconds since the Unix epoch (UTC). Ids are integers here and get
their printed form (``C00000001``) when files are written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np

from simulator import reference as ref

DAY = 86_400


@dataclass(frozen=True)
class WorldSpec:
    customers: int
    start: datetime  # midnight UTC of the first simulated day
    days: int
    seed: int

    @property
    def start_ts(self) -> int:
        return int(self.start.timestamp())

    @property
    def end_ts(self) -> int:
        return self.start_ts + self.days * DAY


def _utc_offset_seconds(tz: str) -> int:
    """Standard (January) UTC offset of a zone; good enough to place local shopping hours."""
    probe = datetime(2025, 1, 15, 12, tzinfo=ZoneInfo(tz))
    return int(probe.utcoffset().total_seconds())


def _local_daytime(rng: np.random.Generator, day_ts: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Move each timestamp to a plausible local shopping time (08:00-23:00, evening-heavy)."""
    hours = np.arange(8, 23)
    weights = np.array([2, 3, 4, 5, 6, 6, 5, 5, 5, 6, 8, 9, 9, 7, 4], float)
    hour = rng.choice(hours, size=day_ts.shape[0], p=weights / weights.sum())
    second = rng.integers(0, 3600, size=day_ts.shape[0])
    local_midnight = (day_ts + offset) // DAY * DAY
    return local_midnight + hour * 3600 + second - offset


def build_catalog(spec: WorldSpec) -> dict[str, np.ndarray | list]:
    """Products with category, replenishment cycle (None for durables), price and launch time."""
    launch_ts = spec.start_ts + int(spec.days * ref.LAUNCH_AT_SHARE) * DAY
    names, cats, cycles, prices, weights, launched = [], [], [], [], [], []
    launch_products = ref.ESTABLISHED_PRODUCTS + ref.LAUNCHED_PRODUCTS
    categories = [
        *ref.CATALOG.items(),
        (ref.LAUNCH_CATEGORY, (ref.LAUNCH_CYCLE_DAYS, ref.LAUNCH_WEIGHT, launch_products)),
    ]
    for category, (cycle, weight, products) in categories:
        for name, price in products:
            names.append(name)
            cats.append(category)
            cycles.append(cycle)
            prices.append(price)
            weights.append(weight / len(products))
            new = (name, price) in ref.LAUNCHED_PRODUCTS
            launched.append(launch_ts if new else spec.start_ts)
    w = np.array(weights)
    return {
        "name": names,
        "category": cats,
        "cycle": np.array([c or 0 for c in cycles]),
        "price": np.array(prices),
        "weight": w / w.sum(),
        "launched_at": np.array(launched, dtype=np.int64),
        "launch_ts": launch_ts,
    }


def build_customers(rng: np.random.Generator, spec: WorldSpec) -> dict[str, np.ndarray]:
    n = spec.customers
    regions = []  # (country, region, tz, codes, languages, weight)
    for country, (cw, rows) in ref.GEOGRAPHY.items():
        for region, rw, tz, codes, langs in rows:
            regions.append((country, region, tz, codes, langs, cw * rw))
    rw = np.array([r[5] for r in regions])
    region_idx = rng.choice(len(regions), size=n, p=rw / rw.sum())

    languages = ["en", "fr", "de", "es"]
    lang_idx = np.zeros(n, np.int64)
    national = np.zeros(n, np.int64)
    for i, (country, _, _, codes, langs, _) in enumerate(regions):
        members = np.flatnonzero(region_idx == i)
        if members.size == 0:
            continue
        lw = np.array([langs.get(code, 0.0) for code in languages])
        lang_idx[members] = rng.choice(len(languages), size=members.size, p=lw / lw.sum())
        prefix = rng.choice(np.array(codes, dtype=np.int64), size=members.size)
        if country in ("US", "CA"):
            exchange = rng.integers(200, 1000, size=members.size)
            exchange = np.where(exchange % 100 == 11, exchange + 1, exchange)  # no N11 codes
            exchange = np.where(exchange == 555, 556, exchange)  # 555 is reserved
            national[members] = (
                prefix * 10**7 + exchange * 10**4 + rng.integers(0, 10**4, members.size)
            )
        else:
            rest = ref.NATIONAL_LENGTH[country] - len(codes[0])
            national[members] = prefix * 10**rest + rng.integers(0, 10**rest, members.size)

    # first names: common ones by language, some that need UCS-2, some missing
    name_values: list[str | None] = []
    name_idx = np.zeros(n, np.int64)
    for li, lang in enumerate(languages):
        members = np.flatnonzero(lang_idx == li)
        offset = len(name_values)
        name_values.extend(ref.FIRST_NAMES[lang])
        name_idx[members] = offset + rng.integers(0, len(ref.FIRST_NAMES[lang]), members.size)
    special_offset = len(name_values)
    name_values.extend(ref.UCS2_FIRST_NAMES)
    name_values.append(None)
    roll = rng.random(n)
    special = roll < ref.UCS2_NAME_SHARE
    name_idx[special] = special_offset + rng.integers(0, len(ref.UCS2_FIRST_NAMES), special.sum())
    name_idx[
        (roll >= ref.UCS2_NAME_SHARE) & (roll < ref.UCS2_NAME_SHARE + ref.MISSING_NAME_SHARE)
    ] = len(name_values) - 1

    # 30% were customers before the window starts (imported history), the rest sign up inside it
    historic = rng.random(n) < 0.3
    created = np.where(
        historic,
        spec.start_ts - rng.integers(1, 730 * DAY, n),
        spec.start_ts + rng.integers(0, spec.days * DAY, n),
    )
    # 0 replenisher, 1 occasional, 2 prospect, 3 big spender
    big = ref.BIG_SPENDER_SHARE
    kind = rng.choice(4, size=n, p=[0.40, 0.35 - big, 0.25, big])
    offsets = np.array([_utc_offset_seconds(r[2]) for r in regions])[region_idx]
    return {
        "id": np.arange(1, n + 1, dtype=np.int64),
        "region_idx": region_idx,
        "regions": regions,
        "lang_idx": lang_idx,
        "languages": languages,
        "national": national,
        "name_idx": name_idx,
        "name_values": name_values,
        "created": created,
        "kind": kind,
        "utc_offset": offsets,
    }


def _replenisher_orders(rng, spec, cust, catalog, members):
    """Orders of customers who reorder one consumable around their own cadence."""
    consumable = np.flatnonzero(catalog["cycle"] > 0)
    w = catalog["weight"][consumable]
    home = consumable[rng.choice(consumable.size, size=members.size, p=w / w.sum())]
    home = np.where(catalog["launched_at"][home] > spec.start_ts, consumable[0], home)
    cycle = catalog["cycle"][home].astype(float)
    cadence = cycle * np.clip(rng.lognormal(0.0, 0.25, members.size), 0.7, 1.5)
    created = cust["created"][members]
    first = np.where(
        created < spec.start_ts,
        spec.start_ts + rng.random(members.size) * cadence * DAY,
        created + rng.exponential(np.minimum(14.0, cadence)) * DAY,
    )
    k = int(np.ceil(spec.days / (30 * 0.7 * 0.6))) + 1
    noise = np.clip(rng.lognormal(0.0, 0.18, (members.size, k - 1)), 0.6, 1.8)
    steps = np.concatenate([np.zeros((members.size, 1)), np.cumsum(cadence[:, None] * noise, 1)], 1)
    times = first[:, None] + steps * DAY
    churn = first + rng.exponential(600.0, members.size) * DAY
    comeback = rng.random(members.size) < 0.2
    gap = rng.uniform(90, 300, members.size) * DAY
    after = times > churn[:, None]
    times = np.where(after & comeback[:, None], times + gap[:, None], times)
    valid = (times < spec.end_ts) & (~after | comeback[:, None])
    rows, _ = np.nonzero(valid)
    return members[rows], times[valid].astype(np.int64), home[rows]


def _occasional_orders(rng, spec, cust, members, orders_a_year: float):
    """Orders of customers who buy at random (Poisson, about ``orders_a_year`` on average)
    until they churn."""
    created = cust["created"][members]
    begin = np.maximum(created, spec.start_ts)
    finish = np.minimum(spec.end_ts, begin + rng.exponential(600.0, members.size) * DAY)
    span = np.maximum(finish - begin, 0) / DAY
    rate = rng.gamma(2.0, orders_a_year / 2.0, members.size) / 365.0
    counts = rng.poisson(rate * span)
    who = np.repeat(np.arange(members.size), counts)
    times = begin[who] + rng.random(who.size) * (finish[who] - begin[who])
    return members[who], times.astype(np.int64), np.full(who.size, -1)


def _random_products(rng, catalog, n, at_ts):
    """Products by popularity; products not launched yet at ``at_ts`` are redrawn as a staple."""
    product = rng.choice(len(catalog["name"]), size=n, p=catalog["weight"])
    not_yet = catalog["launched_at"][product] > at_ts
    staples = np.flatnonzero(catalog["launched_at"] <= catalog["launched_at"].min())
    product[not_yet] = rng.choice(staples, size=int(not_yet.sum()))
    return product


def build_orders(rng, spec, cust, catalog) -> dict[str, np.ndarray]:
    kind = cust["kind"]
    rc, rt, rh = _replenisher_orders(rng, spec, cust, catalog, np.flatnonzero(kind == 0))
    oc, ot, oh = _occasional_orders(rng, spec, cust, np.flatnonzero(kind == 1), 5.0)
    bc, bt, bh = _occasional_orders(rng, spec, cust, np.flatnonzero(kind == 3), 24.0)
    customer = np.concatenate([rc, oc, bc])  # 0-based index into customers
    t = np.concatenate([rt, ot, bt])
    home = np.concatenate([rh, oh, bh])
    t = _local_daytime(rng, t, cust["utc_offset"][customer])
    t = np.maximum(t, cust["created"][customer] + 60)  # never before the account exists
    keep = (t >= spec.start_ts) & (t < spec.end_ts)
    customer, t, home = customer[keep], t[keep], home[keep]
    order = np.lexsort((customer, t))
    customer, t, home = customer[order], t[order], home[order]
    n = t.size

    # lines: replenishers buy their product (sometimes plus one more), others 1 + Poisson(0.4)
    replenish = home >= 0
    n_lines = np.where(replenish, 1 + (rng.random(n) < 0.25), 1 + rng.poisson(0.6, n))
    line_order = np.repeat(np.arange(n), n_lines)
    first_line = np.concatenate([[0], np.cumsum(n_lines)[:-1]])
    line_no = np.arange(line_order.size) - first_line[line_order] + 1
    product = _random_products(rng, catalog, line_order.size, t[line_order])
    is_home_line = (line_no == 1) & replenish[line_order]
    product = np.where(is_home_line, home[line_order], product)
    quantity = np.where(
        is_home_line, rng.choice([1, 2, 3], size=line_order.size, p=[0.8, 0.15, 0.05]), 1
    )
    price = catalog["price"][product]
    discount_pct = rng.choice([0.0, 0.1, 0.2], size=line_order.size, p=[0.85, 0.1, 0.05])
    discount = np.round(price * quantity * discount_pct, 2)
    # status: whole orders get cancelled, single lines get refunded
    cancelled = (rng.random(n) < 0.03)[line_order]
    refunded = rng.random(line_order.size) < 0.02
    status = np.where(cancelled, 1, np.where(refunded, 2, 0))
    channel = rng.choice(3, size=n, p=[0.6, 0.3, 0.1])
    return {
        "order_idx": line_order,
        "line_no": line_no,
        "customer": customer[line_order],
        "product": product,
        "quantity": quantity,
        "price": price,
        "discount": discount,
        "status": status,
        "channel": channel[line_order],
        "ordered_at": t[line_order],
        # order level, used by the event generator
        "order_customer": customer,
        "order_at": t,
        "order_channel": channel,
        "order_first_product": product[first_line],
    }


class _EventParts:
    """Events collected in parts: (customer, ts, type, product, channel, appointment index)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, customer, ts, etype, product=None, channel=0, appt=None) -> None:
        size = customer.size
        self.parts.append(
            (
                customer,
                ts.astype(np.int64),
                np.full(size, etype),
                np.full(size, -1) if product is None else product,
                np.broadcast_to(channel, size).astype(np.int64),
                np.full(size, -1) if appt is None else appt,
            )
        )

    def columns(self) -> list[np.ndarray]:
        return [np.concatenate([p[i] for p in self.parts]) for i in range(6)]


def _sessions_before_orders(rng, catalog, orders, events: _EventParts) -> None:
    """Views, add_to_cart and checkout_started before 70% of the online orders."""
    online = np.flatnonzero(
        (orders["order_channel"] < 2) & (rng.random(orders["order_at"].size) < 0.7)
    )
    oc, ot = orders["order_customer"][online], orders["order_at"][online]
    och = orders["order_channel"][online]
    views = 1 + rng.poisson(1.0, online.size)
    vo = np.repeat(np.arange(online.size), views)
    vprod = np.where(
        rng.random(vo.size) < 0.6,
        orders["order_first_product"][online][vo],
        _random_products(rng, catalog, vo.size, ot[vo]),
    )
    events.add(oc[vo], ot[vo] - rng.integers(300, 2400, vo.size), 0, vprod, och[vo])
    events.add(oc, ot - rng.integers(120, 300, oc.size), 1, orders["order_first_product"][online],
               och)  # fmt: skip
    events.add(oc, ot - rng.integers(10, 120, oc.size), 2, None, och)


def _sessions_without_orders(rng, cust, catalog, created, span, events: _EventParts) -> None:
    sessions = rng.poisson(rng.gamma(1.2, 4.0, span.size) / 365.0 * span)
    sc = np.repeat(np.arange(span.size), sessions)
    st = _local_daytime(
        rng,
        created[sc] + (rng.random(sc.size) * span[sc] * DAY).astype(np.int64),
        cust["utc_offset"][sc],
    )
    sch = rng.choice(2, size=sc.size, p=[0.65, 0.35])
    sv = 1 + rng.poisson(0.6, sc.size)
    svo = np.repeat(np.arange(sc.size), sv)
    events.add(
        sc[svo],
        st[svo] + rng.integers(0, 900, svo.size),
        0,
        _random_products(rng, catalog, svo.size, st[svo]),
        sch[svo],
    )
    cart = rng.random(sc.size) < 0.3
    events.add(
        sc[cart],
        st[cart] + 960,
        1,
        _random_products(rng, catalog, int(cart.sum()), st[cart]),
        sch[cart],
    )
    checkout = cart & (rng.random(sc.size) < 0.4)
    events.add(sc[checkout], st[checkout] + 1200, 2, None, sch[checkout])


def _app_opens_and_sms_clicks(rng, created, span, events: _EventParts) -> None:
    app_user = rng.random(span.size) < 0.3
    opens = np.where(app_user, rng.poisson(6.0 / 365.0 * span), 0)
    ac = np.repeat(np.arange(span.size), opens)
    events.add(ac, created[ac] + (rng.random(ac.size) * span[ac] * DAY).astype(np.int64), 3,
               None, 1)  # fmt: skip
    clicks = rng.poisson(1.0 / 365.0 * span * (rng.random(span.size) < 0.5))
    kc = np.repeat(np.arange(span.size), clicks)
    events.add(kc, created[kc] + (rng.random(kc.size) * span[kc] * DAY).astype(np.int64), 4,
               None, 3)  # fmt: skip


def _bookings(rng, cust, created, span, events: _EventParts) -> dict[str, np.ndarray]:
    """In-store consultations booked online (explicit): their time, store and checklist."""
    books = np.where(rng.random(span.size) < 0.05, 1 + (rng.random(span.size) < 0.3), 0)
    bc = np.repeat(np.arange(span.size), books)
    bt = created[bc] + (rng.random(bc.size) * span[bc] * DAY).astype(np.int64)
    events.add(bc, bt, 5, None, 0, np.arange(bc.size))
    appt_day = bt + rng.integers(1, 15, bc.size) * DAY
    appt_at = (appt_day + cust["utc_offset"][bc]) // DAY * DAY + rng.integers(
        10, 18, bc.size
    ) * 3600
    appt_at -= cust["utc_offset"][bc]
    country = np.array([r[0] for r in cust["regions"]])[cust["region_idx"][bc]]
    store_by_country = {"US": [0, 1], "CA": [2], "GB": [3], "FR": [4], "DE": [5]}
    store = np.zeros(bc.size, np.int64)
    for c, stores in store_by_country.items():
        members = np.flatnonzero(country == c)
        store[members] = rng.choice(stores, size=members.size)
    checklist = rng.integers(0, len(ref.APPOINTMENT_CHECKLISTS), bc.size)
    return {"appt_at": appt_at, "appt_store": store, "appt_checklist": checklist}


def build_events(rng, spec, cust, catalog, orders) -> dict[str, np.ndarray]:
    """Browsing sessions around orders and without them, app opens, SMS clicks, bookings
    (drawn in this order: the same seed gives the same events)."""
    events = _EventParts()
    _sessions_before_orders(rng, catalog, orders, events)
    created = np.maximum(cust["created"], spec.start_ts)
    span = (spec.end_ts - created) / DAY
    _sessions_without_orders(rng, cust, catalog, created, span, events)
    _app_opens_and_sms_clicks(rng, created, span, events)
    appointments = _bookings(rng, cust, created, span, events)

    cols = events.columns()
    cols[1] = np.maximum(cols[1], cust["created"][cols[0]])  # nothing before the account
    keep = (cols[1] >= spec.start_ts) & (cols[1] < spec.end_ts)
    cols = [c[keep] for c in cols]
    order = np.lexsort((cols[2], cols[0], cols[1]))
    cols = [c[order] for c in cols]
    names = ("customer", "ts", "type", "product", "channel", "appt")
    return dict(zip(names, cols, strict=True)) | appointments


def build_consent(rng, spec, cust, orders) -> dict[str, np.ndarray]:
    """Opt-ins with source and exact text, opt-outs (keyword or settings), re-subscriptions."""
    n = cust["id"].size
    created = cust["created"]
    first_order = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first_order, orders["order_customer"], orders["order_at"])
    mid = spec.start_ts + spec.days * DAY // 2
    rows = []  # customer, ts, channel, category, action, source, text index, keyword index

    def add(c, ts, channel, category, action, source, text, keyword):
        size = c.size
        rows.append(
            [c, ts.astype(np.int64)]
            + [
                np.broadcast_to(np.asarray(v), size).astype(np.int64)
                for v in (channel, category, action, source, text, keyword)
            ]
        )

    # vocabularies (index order matters: it is how files print them)
    # channel: 0 sms, 1 email; category: 0 marketing, 1 transactional; action: 0 opt_in, 1 opt_out
    # source: 0 web_form, 1 checkout, 2 keyword, 3 account_settings
    marketing = rng.random(n) < 0.75
    src = rng.choice(3, size=n, p=[0.45, 0.35, 0.20])
    at = np.where(
        (src == 1) & (first_order < np.iinfo(np.int64).max),
        first_order - 30,
        created + rng.integers(5, 600, n),
    )
    m = np.flatnonzero(marketing)
    text = np.select(
        [src[m] == 0, src[m] == 1, src[m] == 2],
        [np.where(at[m] < mid, 0, 1), 2, 3],
    )
    kw = np.where(src[m] == 2, rng.integers(0, len(ref.OPT_IN_KEYWORDS), m.size), -1)
    add(m, at[m], 0, 0, 0, src[m], text, kw)

    trans = np.flatnonzero(rng.random(n) < 0.85)
    add(trans, created[trans] + 700, 0, 1, 0, 1, 4, -1)
    email = np.flatnonzero(rng.random(n) < 0.55)
    add(email, created[email] + 20, 1, 0, 0, 0, 5, -1)

    # opt-outs of SMS marketing; some come back with START
    out = m[rng.random(m.size) < 0.18]
    out_at = at[out] + (rng.exponential(200.0, out.size) * DAY).astype(np.int64)
    by_keyword = rng.random(out.size) < 0.7
    out_kw = np.where(by_keyword, rng.integers(0, len(ref.OPT_OUT_KEYWORDS), out.size), -1)
    add(out, out_at, 0, 0, 1, np.where(by_keyword, 2, 3), -1, out_kw + 100)
    back = rng.random(out.size) < 0.2
    back_at = out_at[back] + rng.integers(30, 200, int(back.sum())) * DAY
    add(
        out[back],
        back_at,
        0,
        0,
        0,
        2,
        3,
        200 + rng.integers(0, len(ref.RESUBSCRIBE_KEYWORDS), int(back.sum())),
    )
    tout = trans[rng.random(trans.size) < 0.02]
    add(tout, created[tout] + rng.integers(1, 400, tout.size) * DAY, 0, 1, 1, 3, -1, -1)

    cols = [np.concatenate([r[i] for r in rows]) for i in range(8)]
    keep = cols[1] < spec.end_ts
    cols = [c[keep] for c in cols]
    order = np.lexsort((cols[3], cols[2], cols[0], cols[1]))
    names = ["customer", "ts", "channel", "category", "action", "source", "text", "keyword"]
    return {name: c[order] for name, c in zip(names, cols, strict=True)}


def consent_vocab() -> dict[str, list]:
    texts = [
        ref.CONSENT_TEXTS[("sms", "marketing", "web_form")][0],
        ref.CONSENT_TEXTS[("sms", "marketing", "web_form")][1],
        ref.CONSENT_TEXTS[("sms", "marketing", "checkout")][0],
        ref.CONSENT_TEXTS[("sms", "marketing", "keyword")][0],
        ref.CONSENT_TEXTS[("sms", "transactional", "checkout")][0],
        ref.CONSENT_TEXTS[("email", "marketing", "web_form")][0],
    ]
    keywords = {i: k for i, k in enumerate(ref.OPT_IN_KEYWORDS)}
    keywords.update({100 + i: k for i, k in enumerate(ref.OPT_OUT_KEYWORDS)})
    keywords.update({200 + i: k for i, k in enumerate(ref.RESUBSCRIBE_KEYWORDS)})
    return {"texts": texts, "keywords": keywords}


def build_world(spec: WorldSpec) -> dict:
    """The whole world as arrays, drawn in a fixed order from one seeded generator."""
    if spec.start.tzinfo is None:
        spec = WorldSpec(spec.customers, spec.start.replace(tzinfo=UTC), spec.days, spec.seed)
    rng = np.random.default_rng(spec.seed)
    catalog = build_catalog(spec)
    cust = build_customers(rng, spec)
    orders = build_orders(rng, spec, cust, catalog)
    events = build_events(rng, spec, cust, catalog, orders)
    consent = build_consent(rng, spec, cust, orders)
    return {
        "spec": spec,
        "catalog": catalog,
        "customers": cust,
        "orders": orders,
        "events": events,
        "consent": consent,
    }
