"""Static reference data for the simulated shop: geography, names, catalog, consent texts.

Kept as plain data so a reader can see what the world looks like without running it.
"""

from __future__ import annotations

BRAND = "Northwind Goods"

# country -> (weight, [(region, weight, time_zone, area codes or mobile prefixes,
#                       {language: weight})])
# US/CA numbers are +1 <area code> <exchange 2-9xx> <4 digits>; the others use a mobile prefix
# followed by random digits up to the national length (checked against phonenumbers in tests).
GEOGRAPHY: dict[str, tuple[float, list[tuple[str, float, str, list[str], dict[str, float]]]]] = {
    "US": (
        0.50,
        [
            (
                "CA",
                0.14,
                "America/Los_Angeles",
                ["213", "310", "415", "510", "619", "818", "916"],
                {"en": 0.8, "es": 0.2},
            ),
            ("TX", 0.10, "America/Chicago", ["214", "512", "713", "210"], {"en": 0.8, "es": 0.2}),
            (
                "FL",
                0.10,
                "America/New_York",
                ["305", "407", "813", "904", "954"],
                {"en": 0.85, "es": 0.15},
            ),
            ("NY", 0.09, "America/New_York", ["212", "718", "917", "516"], {"en": 0.9, "es": 0.1}),
            ("WA", 0.06, "America/Los_Angeles", ["206", "253", "425", "509"], {"en": 1.0}),
            ("IL", 0.06, "America/Chicago", ["312", "773", "847"], {"en": 1.0}),
            ("CT", 0.04, "America/New_York", ["203", "860"], {"en": 1.0}),
            ("MD", 0.04, "America/New_York", ["301", "410", "443"], {"en": 1.0}),
            ("OK", 0.03, "America/Chicago", ["405", "918"], {"en": 1.0}),
            ("AZ", 0.04, "America/Phoenix", ["480", "602", "520"], {"en": 0.85, "es": 0.15}),
            ("CO", 0.05, "America/Denver", ["303", "720", "719"], {"en": 1.0}),
            ("GA", 0.05, "America/New_York", ["404", "678", "770"], {"en": 1.0}),
            ("MA", 0.05, "America/New_York", ["617", "781", "508"], {"en": 1.0}),
            ("PA", 0.05, "America/New_York", ["215", "412", "610"], {"en": 1.0}),
            ("OH", 0.09, "America/New_York", ["216", "614", "513"], {"en": 1.0}),
            ("HI", 0.01, "Pacific/Honolulu", ["808"], {"en": 1.0}),
        ],
    ),
    "CA": (
        0.12,
        [
            ("ON", 0.45, "America/Toronto", ["416", "647", "905", "613"], {"en": 0.95, "fr": 0.05}),
            ("QC", 0.30, "America/Toronto", ["514", "438", "418", "450"], {"fr": 0.8, "en": 0.2}),
            ("BC", 0.15, "America/Vancouver", ["604", "778", "250"], {"en": 1.0}),
            ("AB", 0.10, "America/Edmonton", ["403", "587", "780"], {"en": 1.0}),
        ],
    ),
    # (mobile prefix after the country code, national number length)
    "GB": (
        0.12,
        [
            (
                "",
                1.0,
                "Europe/London",
                ["771", "772", "773", "774", "775", "776", "777"],
                {"en": 1.0},
            )
        ],
    ),
    "FR": (
        0.12,
        [("", 1.0, "Europe/Paris", ["60", "61", "62", "64", "65", "66", "67", "68"], {"fr": 1.0})],
    ),
    "DE": (0.14, [("", 1.0, "Europe/Berlin", ["151", "152", "157", "159"], {"de": 1.0})]),
}

CALLING_CODE = {"US": "1", "CA": "1", "GB": "44", "FR": "33", "DE": "49"}
NATIONAL_LENGTH = {"US": 10, "CA": 10, "GB": 10, "FR": 9, "DE": 11}

# Common names by language, then names that force UCS-2 encoding (characters outside GSM 03.38).
FIRST_NAMES = {
    "en": [
        "Emma",
        "Olivia",
        "Liam",
        "Noah",
        "Ava",
        "Sophia",
        "Mason",
        "James",
        "Isabella",
        "Mia",
        "Ethan",
        "Lucas",
        "Harper",
        "Amelia",
        "Benjamin",
        "Grace",
        "Jack",
        "Chloe",
        "Mary-Jane",
        "D'Arcy",
    ],
    "fr": [
        "Camille",
        "Léa",
        "Manon",
        "Chloé",
        "Louis",
        "Gabriel",
        "Hugo",
        "Jules",
        "Théo",
        "Inès",
        "Élodie",
        "Mathis",
    ],
    "de": [
        "Lukas",
        "Leon",
        "Finn",
        "Jonas",
        "Anna",
        "Lena",
        "Hannah",
        "Jürgen",
        "Sören",
        "Emilia",
        "Paul",
        "Marie",
    ],
    "es": [
        "Sofía",
        "Mateo",
        "Valentina",
        "Santiago",
        "Camila",
        "Lucía",
        "José",
        "María",
        "Nicolás",
        "Diego",
    ],
}
UCS2_FIRST_NAMES = [
    "Zoë",
    "Łukasz",
    "Anaïs",
    "Maël",
    "Gaëlle",
    "Małgorzata",
    "Noémie ✨",
    "Mia 🌸",
    "Siobhán",
    "Ngọc",
    "Çağla",
    "Renée",
]
UCS2_NAME_SHARE = 0.04
MISSING_NAME_SHARE = 0.05

# category -> (replenishment cycle in days or None for durables, popularity weight, products)
# products: (name, price in USD)
CATALOG: dict[str, tuple[int | None, float, list[tuple[str, float]]]] = {
    "coffee": (
        30,
        0.16,
        [
            ("House Blend Coffee 1kg", 24.0),
            ("Espresso Roast 500g", 16.5),
            ("Decaf Colombia 500g", 17.0),
            ("Cold Brew Bags x12", 14.0),
        ],
    ),
    "pet_food": (
        30,
        0.12,
        [
            ("Grain-Free Dog Food 5kg", 49.0),
            ("Salmon Cat Food 3kg", 32.0),
            ("Puppy Formula 4kg", 44.0),
        ],
    ),
    "skincare": (
        45,
        0.13,
        [
            ("Daily Moisturiser 50ml", 28.0),
            ("Vitamin C Serum 30ml", 38.0),
            ("Gentle Cleanser 200ml", 18.0),
            ("SPF 50 Sunscreen 100ml", 22.0),
        ],
    ),
    "tea": (
        45,
        0.07,
        [("Earl Grey 100 bags", 9.5), ("Sencha Green Tea 200g", 15.0), ("Chamomile 50 bags", 7.5)],
    ),
    "supplements": (
        60,
        0.10,
        [
            ("Vitamin D3 120 caps", 14.0),
            ("Omega-3 90 caps", 21.0),
            ("Magnesium 60 caps", 12.5),
            ("Probiotic 30 caps", 29.0),
        ],
    ),
    "haircare": (
        60,
        0.07,
        [
            ("Repair Shampoo 500ml", 16.0),
            ("Repair Conditioner 500ml", 16.0),
            ("Scalp Serum 50ml", 26.0),
        ],
    ),
    "shaving": (90, 0.05, [("Razor Blades 8-pack", 19.0), ("Shave Gel 200ml", 9.0)]),
    "apparel": (
        None,
        0.10,
        [
            ("Merino Sweater", 119.0),
            ("Rain Jacket", 159.0),
            ("Linen Shirt", 69.0),
            ("Wool Socks 3-pack", 29.0),
        ],
    ),
    "homeware": (
        None,
        0.08,
        [("Ceramic Mug Set", 39.0), ("French Press 1l", 45.0), ("Burr Grinder", 129.0)],
    ),
    "electronics": (
        None,
        0.07,
        [("Electric Toothbrush", 89.0), ("Hair Dryer", 119.0), ("Electric Kettle", 69.0)],
    ),
    "accessories": (None, 0.05, [("Leather Wallet", 59.0), ("Canvas Tote", 25.0)]),
}
# A category whose range grows part-way through the window (for the category launch
# campaign): its established products sell from the start, the new ones from the launch on,
# so the launch has an audience (earlier buyers of the category who have not bought it yet).
LAUNCH_CATEGORY = "fragrance"
LAUNCH_CYCLE_DAYS, LAUNCH_WEIGHT = 90, 0.06
ESTABLISHED_PRODUCTS = [("Eau de Toilette 100ml", 58.0)]
LAUNCHED_PRODUCTS = [("Eau de Parfum 50ml", 78.0), ("Body Mist 100ml", 24.0)]
LAUNCH_AT_SHARE = 0.7  # launches at 70% of the simulated window

# Customers who buy often enough to reach the upper loyalty tiers (gold at 1,500 points a
# year): a small share, ordering about 24 times a year instead of about 5.
BIG_SPENDER_SHARE = 0.03

# The exact text shown at each opt-in point; v2 replaced v1 part-way through (consent proof
# must keep the text that was actually shown).
CONSENT_TEXTS = {
    ("sms", "marketing", "web_form"): [
        f"Yes, send me recurring automated marketing texts from {BRAND} at this number. "
        "Consent is not a condition of purchase. Msg & data rates may apply. Msg frequency "
        "varies. Reply HELP for help, STOP to cancel.",
        f"I agree to receive recurring automated marketing text messages from {BRAND} at the "
        "number provided. Consent is not a condition of purchase. Up to 6 msgs/month. Msg & "
        "data rates may apply. Reply STOP to opt out, HELP for help.",
    ],
    ("sms", "marketing", "checkout"): [
        f"Text me offers and restock reminders from {BRAND}. Consent not required to buy. "
        "Msg & data rates may apply. Reply STOP to cancel.",
    ],
    ("sms", "marketing", "keyword"): [
        f"{BRAND}: Thanks for joining! Recurring automated marketing msgs. Msg & data rates "
        "may apply. Reply HELP for help, STOP to cancel.",
    ],
    ("sms", "transactional", "checkout"): [
        f"Send me order, delivery and appointment updates from {BRAND} by text.",
    ],
    ("email", "marketing", "web_form"): [
        f"Email me news and offers from {BRAND}. Unsubscribe at any time.",
    ],
}
OPT_IN_KEYWORDS = ["JOIN", "join", "Subscribe"]
OPT_OUT_KEYWORDS = ["STOP", "stop", "Stop", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "ARRET"]
RESUBSCRIBE_KEYWORDS = ["START", "UNSTOP", "YES"]

STORES = [
    ("S01", "Northwind Seattle"),
    ("S02", "Northwind Brooklyn"),
    ("S03", "Northwind Montréal"),
    ("S04", "Northwind London Soho"),
    ("S05", "Northwind Paris Marais"),
    ("S06", "Northwind Berlin"),
]
APPOINTMENT_CHECKLISTS = [
    ["bring your current products", "arrive 10 minutes early"],
    ["come with a clean face", "list any allergies"],
    ["bring your order number", "bring the item for fitting"],
]
