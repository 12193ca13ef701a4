#!/usr/bin/env python3
"""Generate the synthetic receipt fixture used by suites/receipts.yaml.

Writes fixtures/receipts/train.jsonl and fixtures/receipts/test.jsonl: one JSON object per
line with `id`, `text` (the receipt as printed, one line per printed line) and `expected`
(the gold fields). Standard library only and deterministic: rerunning reproduces both files
byte for byte.

    python3 scripts/gen_receipts.py

The receipts vary the things extraction has to cope with: dates printed day-first, ISO or with
a month name; totals with a currency code or symbol and thousands separators; vendors in
capitals with legal suffixes; a payment method from three; a list of purchased items; and
an optional loyalty number that most receipts do not have (gold null).
"""

import json
import os
from random import Random

SEED = 20261128
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "fixtures", "receipts")

VENDORS = [
    "Kedai Runcit Maju Jaya", "Northwind Grocers", "Harbour Street Pharmacy", "Lim Brothers Hardware",
    "Green Leaf Cafe", "Taman Sentosa Mart", "Blue Door Books", "Café Lumière", "Sunrise Bakery",
    "Metro Office Supplies", "Pasar Mini Ceria", "Oak & Iron Tools", "Riverside Florist",
]
SUFFIXES = ["Sdn Bhd", "Ltd", "Enterprise", "& Co", ""]
STREETS = ["Jalan Tasik Utama", "High Street", "Harbour Road", "Jalan Ampang", "Market Lane", "Orchard Way"]
CITIES = ["Kuala Lumpur", "Petaling Jaya", "Leeds", "Bristol", "Penang", "Shah Alam"]
ITEMS = [
    ("Milk 1L", 6.20), ("White Bread", 3.50), ("Eggs (10)", 4.90), ("Coffee Beans 250g", 18.00),
    ("Paracetamol 500mg", 7.80), ("AA Batteries x4", 12.90), ("Notebook A5", 5.50), ("Roses (6)", 24.00),
    ("Hammer 16oz", 32.00), ("Croissant", 4.20), ("Green Tea", 3.80), ("Printer Paper", 21.90),
    ("Hand Soap", 5.10), ("Wood Screws", 9.40), ("Novel (paperback)", 39.90), ("Teh Tarik", 2.60),
]
MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
PAYMENTS = {"cash": ["CASH", "Cash tendered"], "card": ["VISA **** 4821", "MASTERCARD", "DEBIT CARD"], "e-wallet": ["TOUCH N GO EWALLET", "GRABPAY", "E-WALLET"]}


def printed_date(rng, y, m, d):
    style = rng.randrange(5)
    if style == 0:
        return f"{d:02d}/{m:02d}/{y}"
    if style == 1:
        return f"{y}-{m:02d}-{d:02d}"
    if style == 2:
        return f"{d:02d} {MONTHS[m - 1]} {y % 100:02d}"
    if style == 3:
        return f"{d:02d}-{m:02d}-{y}"
    return f"{d} {MONTHS[m - 1].title()} {y}"


def printed_money(rng, amount):
    text = f"{amount:,.2f}"
    return rng.choice([f"RM{text}", f"RM {text}", f"${text}", f"{text}", f"MYR {text}"])


def receipt(rng, n):
    vendor = rng.choice(VENDORS)
    suffix = rng.choice(SUFFIXES)
    company = f"{vendor} {suffix}".strip()
    address = f"No {rng.randint(1, 220)}, {rng.choice(STREETS)}, {rng.randint(10000, 99999)} {rng.choice(CITIES)}"
    y, m = rng.choice([2017, 2018, 2019]), rng.randint(1, 12)
    d = rng.randint(1, 28)
    bought = rng.sample(ITEMS, rng.randint(1, 4))
    lines = []
    total = 0.0
    for name, price in bought:
        qty = rng.choice([1, 1, 1, 2, 3])
        if rng.random() < 0.15:
            price *= 40  # a bulk order, so some totals need thousands separators
        total += qty * price
        lines.append(f"{qty} x {name.upper():<22} {qty * price:>9.2f}")
    total = round(total, 2)
    payment = rng.choice(sorted(PAYMENTS))
    loyalty = f"LY-{rng.randint(100000, 999999)}" if rng.random() < 0.3 else None
    text = [company.upper(), address.upper(), f"TEL: 0{rng.randint(3, 9)}-{rng.randint(1000000, 9999999)}"]
    text.append(f"DATE: {printed_date(rng, y, m, d)}  {rng.randint(8, 21)}:{rng.randint(0, 59):02d}")
    text.append(f"INVOICE NO: {rng.randint(10000, 99999)}")
    text += lines
    text.append(f"SUBTOTAL {total:,.2f}")
    text.append(f"TOTAL {printed_money(rng, total)}")
    text.append(f"PAID BY {rng.choice(PAYMENTS[payment])}")
    if loyalty:
        text.append(f"MEMBER {loyalty}")
    text.append("THANK YOU, PLEASE COME AGAIN")
    expected = {
        "company": company,
        "date": f"{d:02d}/{m:02d}/{y}",
        "address": address,
        "total": f"{total:.2f}",
        "payment": payment,
        "items": [name for name, _ in bought],
        "loyalty_number": loyalty,
    }
    return {"id": f"rcpt-{n:03d}", "text": "\n".join(text), "expected": expected}


def main():
    rng = Random(SEED)
    os.makedirs(OUT_DIR, exist_ok=True)
    rows = [receipt(rng, n) for n in range(1, 101)]
    for name, part in (("train", rows[:40]), ("test", rows[40:])):
        with open(os.path.join(OUT_DIR, f"{name}.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for row in part:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows[:40])} train and {len(rows[40:])} test receipts to {OUT_DIR}")


if __name__ == "__main__":
    main()
