#!/usr/bin/env python3
"""Generate the synthetic support-ticket fixture used by the evalgate quick start.

Writes fixtures/tickets/train.csv and fixtures/tickets/test.csv (header
``id,text,label``). Standard library only and fully deterministic: rerunning
reproduces both files byte for byte.

    python3 scripts/gen_tickets.py

Every ticket is built from a per-label template (with ``<a|b|c>`` alternations
and ``{slot}`` fillers), wrapped in a register (neutral, polite, angry, terse),
and optionally given detail or context sentences, a line break, an emoji or a typo.
About 11% of tickets come from deliberately borderline templates that borrow
another label's vocabulary; they are labelled by the definitions in
fixtures/tickets/README.md. A pure-Python multinomial naive Bayes baseline
(word unigrams + bigrams) is trained on train and scored on test as a sanity
check on difficulty.
"""

import csv
import io
import math
import os
import re
from collections import Counter
from random import Random

SEED = 20261127
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "fixtures", "tickets")

LABELS = ["billing", "technical", "account", "shipping", "refund", "other"]
COUNTS = {
    "train": {"billing": 88, "technical": 90, "account": 82, "shipping": 84, "refund": 78, "other": 58},
    "test": {"billing": 44, "technical": 44, "account": 42, "shipping": 42, "refund": 38, "other": 30},
}
ID_PREFIX = {"train": "tr", "test": "te"}
BORDERLINE_RATE = 0.115
# Share of each label's templates used only in test (unseen phrasings), and of
# borderline templates: borderline ones are split between the two splits.
HOLDOUT_RATE = 0.25
BORDERLINE_TEST_SHARE = 0.40
TYPO_RATE = 0.10
NEWLINE_RATE = 0.08
EMOJI_RATE = 0.04
CONTEXT_RATE = 0.30
DETAIL_RATE = 0.30  # chance of at least one label-specific detail sentence
LONG_RATE = 0.10    # of which this share gets 2-3 details: the long tickets
MIN_WORDS, MAX_WORDS = 5, 60
NEAR_DUP_JACCARD = 0.75

# ---------------------------------------------------------------------------
# Slot fillers
# ---------------------------------------------------------------------------

PRODUCTS = [
    "Aero X2 headset", "Lumen smart bulb", "Kettle Pro 1.7L", "TrailRunner backpack",
    "Orbit smartwatch", "Cinder desk lamp", "FlexFit yoga mat", "BrewMate grinder",
    "Nomad power bank", "Halo webcam", "Drift wireless mouse", "Pebble speaker",
    "Atlas standing desk", "Quill e-reader", "Summit rain jacket", "Vista monitor arm",
]
PLANS = ["Plus plan", "Pro plan", "Team plan", "Basic plan", "Family plan", "Business plan"]
DEVICES = ["iPhone 13", "iPhone 15", "Pixel 7", "Galaxy S22", "iPad", "Windows laptop", "MacBook", "Android tablet", "Chromebook"]
BROWSERS = ["Chrome", "Firefox", "Safari", "Edge", "Brave"]
INTEGRATIONS = ["Shopify", "Slack", "Google Sheets", "Zapier", "QuickBooks", "Xero", "Salesforce", "HubSpot"]
CARRIERS = ["DHL", "UPS", "FedEx", "Royal Mail", "DPD", "PostNL", "USPS", "Canada Post", "Evri"]
CITIES = ["Leeds", "Lyon", "Austin", "Kraków", "Porto", "Osaka", "Melbourne", "Toronto", "São Paulo", "Dublin", "Utrecht", "Cork"]
COUNTRIES = ["Norway", "Mexico", "Japan", "South Africa", "Iceland", "Switzerland", "Brazil", "New Zealand", "Singapore", "Chile"]
NAMES = ["Priya", "Tom", "José", "Zoë", "Mei", "Olu", "Sven", "Aisha", "Grzegorz", "Fatima", "Liam",
         "Hannah", "Kenji", "Marta", "Dev", "Chloé", "Ravi", "Ingrid", "Ahmed", "Lucy"]
COLLEAGUES = ["Sam", "Alex", "Jo", "Nadia", "Rob", "Yuki", "Ewa"]  # disjoint from NAMES (sign-offs)
AGENTS = ["Carla", "Ben", "Noor", "Felix", "Ana"]
FEATURES = ["wishlist", "order history", "saved addresses", "notifications", "reports", "calendar", "export", "dashboard"]
ERRORS = ['Error 500', '"Something went wrong"', "ERR_CONNECTION_RESET", "a 403 Forbidden", '"Session expired"',
          "error code E-1042", "a 502 Bad Gateway", '"Unexpected token"', "a timeout"]
DATES = ["March 3", "12 October", "2026-10-14", "the 5th", "Monday", "Nov 2", "the 21st", "14/09", "Sept 30",
         "Friday", "1 December", "the 9th"]
LANGUAGES = ["Spanish", "German", "French", "Portuguese", "Polish", "Japanese"]
TOPICS = ["small e-commerce brands", "sustainable packaging", "remote work gear", "customer service trends"]
DOMAINS = ["example.com", "example.org", "example.net"]
EMOJI = {
    "angry": ["😡", "🤬", "🙄", "😤"],
    "polite": ["🙏", "🙂", "😊", "👍"],
    "neutral": ["📦", "🙂", "🤔", "👀"],
    "terse": ["🙄", "👍", "🤷"],
}


CURRENCY_MARK = "\u00a4"


def money(r):
    cur = CURRENCY_MARK  # replaced by one currency per ticket in compose()
    if r.random() < 0.12:
        whole = r.randint(1000, 2400)
        return f"{cur}{whole // 1000},{whole % 1000:03d}.{r.choice(['00', '99', '50'])}"
    return f"{cur}{r.randint(5, 480)}.{r.choice(['00', '99', '49', '50', '95'])}" if r.random() < 0.7 else f"{cur}{r.randint(5, 300)}"


def order_no(r):
    k = r.randrange(4)
    if k == 0:
        return f"#{r.randint(100000, 999999)}"
    if k == 1:
        return f"ORD-{r.randint(10000, 99999)}"
    if k == 2:
        return f"#A{r.randint(1000, 9999)}"
    return f"{r.randint(4000000, 4999999)}"


def tracking(r):
    k = r.randrange(3)
    if k == 0:
        return "1Z" + "".join(r.choice("0123456789ABCDEFGHJKLMNPRSTVWXYZ") for _ in range(14))
    if k == 1:
        return f"JD{r.randint(10**13, 10**14 - 1)}"
    return f"RM{r.randint(10**8, 10**9 - 1)}GB"


def email(r):
    user = r.choice(["sam", "j.doe", "anna.k", "mike88", "bea", "office", "k.tanaka", "liz.m", "dan_r", "accounts"])
    return f"{user}@{r.choice(DOMAINS)}"


SLOTS = {
    "order": order_no,
    "amount": money,
    "product": lambda r: r.choice(PRODUCTS),
    "product2": lambda r: r.choice(PRODUCTS),
    "plan": lambda r: r.choice(PLANS),
    "device": lambda r: r.choice(DEVICES),
    "browser": lambda r: r.choice(BROWSERS),
    "integration": lambda r: r.choice(INTEGRATIONS),
    "carrier": lambda r: r.choice(CARRIERS),
    "city": lambda r: r.choice(CITIES),
    "city2": lambda r: r.choice(CITIES),
    "country": lambda r: r.choice(COUNTRIES),
    "name": lambda r: r.choice(NAMES),
    "colleague": lambda r: r.choice(COLLEAGUES),
    "agent": lambda r: r.choice(AGENTS),
    "feature": lambda r: r.choice(FEATURES),
    "error": lambda r: r.choice(ERRORS),
    "date": lambda r: r.choice(DATES),
    "language": lambda r: r.choice(LANGUAGES),
    "topic": lambda r: r.choice(TOPICS),
    "email": email,
    "tracking": tracking,
    "invoice": lambda r: f"INV-2026-{r.randint(1000, 9999)}",
    "last4": lambda r: f"{r.randint(0, 9999):04d}",
    "n": lambda r: str(r.randint(2, 9)),
    "m": lambda r: str(r.randint(10, 25)),
    "days": lambda r: str(r.randint(5, 21)),
    "year": lambda r: str(r.randint(2015, 2024)),
    "version": lambda r: f"{r.randint(3, 5)}.{r.randint(0, 12)}.{r.randint(0, 9)}",
    "code": lambda r: r.choice(["WELCOME10", "SPRING25", "FREESHIP", "BF2026", "VIP15"]),
    "vat": lambda r: f"GB{r.randint(100000000, 999999999)}",
}

# ---------------------------------------------------------------------------
# Templates. <a|b> picks one alternative; {slot} is filled from SLOTS.
# ---------------------------------------------------------------------------

TEMPLATES = {
    "billing": [
        "<Can you send me|Could I get|Please send me> <a copy of the|the> invoice for order {order}? <I need it for my expense report.|My accountant is asking for it.|Need it for tax purposes.>",
        "I need to update the card on file, the one ending in {last4} <expired|was cancelled by my bank|was replaced>.",
        "Why was I charged {amount} on {date}? I don't <recognise|recognize> this charge.",
        "~<How do I|Can I> switch from monthly to <yearly|annual> billing on the {plan}?",
        "Invoice {invoice} has the wrong company name on it. Could you reissue it <for|to> our new entity?",
        "~Is VAT included in the {amount} price or <added at checkout|charged on top>?",
        "My payment keeps getting declined even though the card works <everywhere else|fine in other shops>.",
        "I'd like to downgrade to the Basic plan <starting next month|from the next billing cycle|when my current term ends>.",
        "~Can I pay by <bank transfer|direct debit|invoice> instead of <credit card|card>?",
        "~Please add our VAT number {vat} to <all future invoices|our invoices going forward>.",
        "<When does my {plan} renew?|What date does my {plan} renew on?> I can't find the <billing date|renewal date> anywhere.",
        "We're billed for {m} seats but only have {n} active users. <Can you adjust that?|How do I reduce the seat count?|Please correct the seat count.>",
        "~Do you offer <discounted pricing|a discount> for <nonprofits|students|schools|charities>?",
        "How do I cancel my subscription before the next billing cycle so I'm not charged again?",
        "The price of the {plan} went up to {amount} a month <without any notice|and nobody told me>. Why?",
        "I need a receipt that shows my billing address, the current one only has my name.",
        "~Is it possible to pay with <PayPal|Apple Pay|Klarna|Google Pay>?",
        "There's a pending charge of {amount} from you on my <statement|bank app>. What is it for?",
        "Checkout <added tax twice|charged VAT twice> on order {order}, can you explain the total?",
        "~Please send <invoices|receipts> to {email} instead of my personal address from now on.",
        "~Is there a way to get one combined <monthly|quarterly> invoice for all our orders?",
        "My promo code {code} didn't apply and I paid full price, can it still be applied to my <next bill|account>?",
        "~How much would the {plan} cost per <year|month> for {m} users?",
        "~Can I split the payment for order {order} across two cards?",
        "I got a \"payment failed\" email but my bank says the {amount} went through. <Which is it?|Am I paid up or not?>",
        "~Please remove my old <Visa|Mastercard|Amex> ending {last4} from <saved payment methods|my wallet>.",
        "The invoice total ({amount}) doesn't match what I saw at checkout.",
        "~Do you charge a fee for paying in <euros|pounds|dollars>?",
        "~What happens to my billing if I pause the subscription for {n} months?",
        "Could you explain the line item \"<service adjustment|platform fee|proration>\" on invoice {invoice}?",
        "~Our finance team needs invoices <in PDF|on paper> with a PO number. Is that possible?",
        "~Billing question: am I charged per user or per workspace on the {plan}?",
        "My trial ended and I was moved to the {plan} at {amount} a month. I thought it was cheaper?",
    ],
    "technical": [
        "The app crashes <as soon as I open it|every time I open the cart|when I tap on my orders> on my {device}.",
        "I keep getting {error} when I try to <load the dashboard|open my orders|save anything>.",
        "The <site|website|app> is <extremely|super|really|painfully> slow today, <pages take 30 seconds or more to load|everything times out>.",
        "The {integration} integration <stopped syncing|has not synced anything> since {date}.",
        "Search <returns nothing|shows zero results>, even for products I know you have.",
        "After the latest update the {feature} page <doesn't load at all|is completely blank|just spins>.",
        "<Export to CSV|Exporting my orders> gives me an empty file every time.",
        "Push notifications stopped working on my {device} <after the update|a few days ago>.",
        "I just get a blank white screen in {browser}<, tried clearing the cache already|>.",
        "Images on the product pages aren't loading, just <grey boxes|broken image icons>.",
        "Your API has returned {error} for <every request|about half our requests> since this morning.",
        "The page freezes when I click the \"Save\" button in <settings|my preferences>.",
        "Dark mode makes the text on the <settings|checkout|help> page unreadable.",
        "Webhooks to our endpoint are being delivered <twice|three times> for each event.",
        "The barcode scanner in the app <doesn't recognise anything|just shows a black screen>.",
        "Is there an outage? Nothing loads for me <on mobile or desktop|in any browser>.",
        "Uploading a <photo|file|PDF> fails at 99% every single time.",
        "The {feature} shows the wrong time zone, everything is off by <an hour|two hours>.",
        "I'm getting a <certificate|security> warning when I open your site in {browser}.",
        "Since version {version} the app <drains my battery really fast|gets really hot>.",
        "The cart empties itself whenever I refresh the page.",
        "Filters on the search page reset every time I scroll down.",
        "Sync between the desktop app and my {device} <is broken|stopped working>.",
        "Your {integration} plugin throws {error} <during install|when I connect it>.",
        "The date picker won't let me choose anything after {date}.",
        "Video tutorials won't play, just a spinning wheel<.| on {browser}.>",
        "Bug: the quantity field accepts <negative numbers|letters> <and then errors|>.",
        "The app won't install on my {device}, it says the device is incompatible.",
        "Clicking any link in the {feature} section <opens a 404 page|does nothing>.",
        "The <Android|iOS> widget shows data from <three days ago|last week> and never refreshes.",
        "Copy-paste doesn't work in the notes field on {browser}.",
        "Charts on the reports page render as empty boxes <on {browser}|since the redesign>.",
    ],
    "account": [
        "I can't log in, it says my password is <wrong|incorrect> but I just reset it.",
        "The password reset email never arrives<, I checked spam too|, tried three times>.",
        "~How do I <turn on|set up|enable> two-factor authentication?",
        "I <lost|broke> my phone and can't get my 2FA codes anymore.",
        "Please delete my account and all the <data|personal information> you hold about me.",
        "~How do I change the email on my account to {email}?",
        "My account got locked after too many <login attempts|wrong passwords>.",
        "There's a login from {city} I don't recognise. I think someone else got into my account.",
        "Can you merge my two accounts? I accidentally signed up twice<, once with {email}|>.",
        "~How can I change my <username|display name>?",
        "I never got the verification email after signing up<, so I can't do anything|>.",
        "~How do I add my <partner|colleague> {colleague} as a second user on my account?",
        "My name is spelled wrong on my profile and <I can't edit it|the field is greyed out>.",
        "Sign in with <Google|Apple> creates a new account instead of using my existing one.",
        "~Please remove my phone number from my profile.",
        "My account says \"<suspended|disabled>\" and I have no idea why.",
        "~How do I transfer ownership of our <workspace|company> account to {colleague}?",
        "It won't accept the answer to my security question.",
        "~How do I download a copy of my personal data? (GDPR request)",
        "The magic login link always says it has expired.",
        "I closed my account by mistake, can you reactivate it?",
        "I forgot which email address I used to <register|sign up>.",
        "Please sign me out of all devices, I stayed logged in on a <shared|library> computer.",
        "My 2FA recovery codes don't work<, none of the ten|>.",
        "~How do I change the language of my profile to {language}?",
        "~What's the process to permanently close my account?",
        "~Can I change the account holder name <after my marriage|to my legal name>?",
        "Login keeps saying \"user not found\" even though I've had an account since {year}.",
        "~I'd like to switch my login from email to my <Apple ID|Google account>.",
        "Can you unlock my profile? It says too many password resets.",
    ],
    "shipping": [
        "Where is my order {order}? It was supposed to arrive <on|by> {date}.",
        "Tracking number {tracking} hasn't updated in {days} days.",
        "Can I change the delivery address for order {order}? I've <moved|just moved> to {city}.",
        "{carrier} marked my parcel as delivered but <there's nothing here|it's not at my door|nobody in the building has it>.",
        "~Do you <ship|deliver> to {country}?",
        "~How long does standard delivery take to {city}?",
        "My package has been stuck in customs <for a week|since {date}>.",
        "~Can I upgrade to express shipping on an order I already placed?",
        "Only part of order {order} arrived, the {product} is missing.",
        "~Can you hold my delivery until I'm back on {date}?",
        "Order {order} has said \"<preparing to ship|processing>\" for over a week.",
        "~Can I collect my order from a {carrier} <locker|pickup point> instead of home delivery?",
        "The courier says they tried to deliver but I was home all day and nobody knocked.",
        "~Please ship order {order} to my work address instead.",
        "My order went to my old address, can it be redirected?",
        "~Can you combine shipping for my two orders?",
        "When will my backordered {product} actually ship?",
        "The courier left my parcel with a neighbour I've never met.",
        "~Do you deliver on <Saturdays|Sundays|weekends>?",
        "I received someone else's package instead of mine.",
        "Tracking says delivered in {city} but I live in {city2}.",
        "~Can I get an estimated delivery date for order {order}?",
        "Tracking shows my parcel going back to the warehouse, why?",
        "I need the {product} before {date}. Will it arrive in time with standard shipping?",
        "{carrier} says the parcel was lost in transit and told me to contact the sender.",
        "Hola, my pedido {order} still hasn't arrived. Any update on the envío?",
        "Delivery status: {carrier} | {tracking} | \"exception\". What does that mean?",
        "~Which courier do you use for deliveries to {country}?",
        "~The delivery driver needs a gate code, can I add it to order {order}?",
        "My parcel is sitting at the depot, can you ask {carrier} to redeliver?",
    ],
    "refund": [
        "I'd like a refund for order {order}, the {product} <doesn't work|stopped working after a day>.",
        "Please refund the {amount} you charged me on {date}.",
        "I sent the {product} back {n} weeks ago and still haven't <got|received> my money back.",
        "How long does a refund take to show up on my <card|bank account>?",
        "I cancelled during the free trial, I want my {amount} back.",
        "Where is my refund? You confirmed it on {date}.",
        "The {product} is nothing like the <description|photos>. I want my money back.",
        "Can I get the money back on my card instead of store credit?",
        "The refund for order {order} is {amount} short of what I paid. <Please send the rest.|I want the full amount back.>",
        "I want to return the {product} for a full refund.",
        "Your return label arrived, when will the refund <actually be processed|hit my account>?",
        "Refund request for order {order}: <wrong size|wrong colour|arrived late>.",
        "You refunded my old card, which is closed. How do I get the money?",
        "I'd like my money back for the {plan}, I haven't used it <once|at all>.",
        "~Will the shipping cost be included in my refund?",
        "Why was a restocking fee taken off my refund? I want the full {amount}.",
        "The price dropped a day after I bought the {product}. Can you refund the difference?",
        "~Bought the {product} as a gift, they didn't like it. Can I get a refund?",
        "Still waiting on my refund for {order}, it's been {days} days.",
        "Please process a refund for the <damaged|faulty> {product}.",
        "I was auto-renewed into the annual plan without a reminder, please refund it.",
        "Return approved on {date}, but no refund yet.",
        "I paid {amount} extra for express and it took a week. Please refund the express fee.",
        "Je voudrais un remboursement for order {order}, it arrived broken.",
        "Order {order} | {amount} | please refund, I changed my mind within the 14 days.",
        "I'd like to cancel order {order} and get my money back before it ships.",
        "The {product} broke after {n} days. Not interested in a replacement, just refund me.",
        "Can you reverse the {amount} charge for the order I cancelled on {date}?",
        "Refund to PayPal please, not store credit, for order {order}.",
        "Please refund my {plan} subscription, I signed up by mistake.",
    ],
    "other": [
        "~Just wanted to say the {product} is <fantastic|brilliant|the best thing I bought this year>, great job!",
        "~Do you have a <physical store|showroom> in {city}?",
        "~We run a small shop in {city} and would love to stock your products. Who do I talk to about wholesale?",
        "~Are your products made sustainably?",
        "~{agent} on your support team was super helpful <yesterday|last week>, please pass on my thanks.",
        "~Are you hiring? I'd love to work with you.",
        "~Feature request: could you add a way to <share|compare> products?",
        "~What are your phone support opening hours?",
        "~Do you sponsor local events? We're a <running club|youth football team> in {city}.",
        "~I'm writing an article about {topic} and would love a quote from your team.",
        "~Is the {product} compatible with the {product2}?",
        "~Do you sell gift cards?",
        "~Suggestion: please offer the {product} in more colours.",
        "~Where are your products <manufactured|made>?",
        "~Your new website looks great, much easier to use.",
        "~How do I become an affiliate?",
        "~Do you offer gift wrapping?",
        "~Love the newsletter, keep it up!",
        "~What's the warranty on the {product}?",
        "~Who should I contact for a press inquiry?",
        "~What's the difference between the {product} and the {product2}?",
        "~Just testing whether this contact form works.",
        "~I have an idea for a product collaboration, is there someone I can pitch to?",
        "~Is there a student ambassador programme?",
        "~Do you have an office I can visit in {country}?",
        "~Danke for the quick help last week, really appreciated!",
        "~Do you have a recycling programme for old electronics?",
        "~Can I leave a review somewhere other than your site?",
        "~Random question, but what font do you use on your website?",
    ],
}

# Borderline tickets: another label's vocabulary, labelled by the README definitions.
BORDERLINE = {
    "billing": [
        "Why was I charged twice for order {order}?",
        "I cancelled last month but you charged me {amount} again. What's going on?",
        "My refund shows as a credit on invoice {invoice}, is that how it works?",
        "Can't pay, the card form keeps saying my card number is invalid.",
        "Why was I charged for shipping on an order that should have had free delivery?",
        "I need an invoice for the refund you issued on order {order}.",
        "The app says my subscription expired but I paid {amount} on {date}.",
        "Why does my account page show an outstanding balance of {amount}?",
        "~Can I get the refund as account credit towards my next invoice instead?",
    ],
    "technical": [
        "The app logs me out every few minutes, even with remember me ticked.",
        "The payment page throws {error} when I click pay.",
        "The order tracking page on your site shows a 404 for every order.",
        "The refund button in the app does nothing when I tap it.",
        "Invoices download as corrupted PDFs that won't open.",
        "The login page just spins forever in {browser}, on other browsers it's fine.",
        "Checkout freezes when I click \"Place order\" so I can't buy anything.",
        "The address autocomplete at checkout puts my house number in the wrong field.",
    ],
    "account": [
        "I can't log in to see my invoice.",
        "I can't sign in to check the tracking for my order.",
        "Can't get into my account to request a refund for order {order}.",
        "Please delete my account, and make sure nothing else gets charged.",
        "I changed my email and now I don't get any order updates.",
        "The 2FA text message never arrives, is your system down?",
        "The password reset link takes me to an error page.",
        "Someone changed the delivery address on my account, I didn't do that.",
    ],
    "shipping": [
        "My package never arrived, what are my options?",
        "Why is shipping {amount} for such a small item?",
        "The tracking link in my confirmation email doesn't work.",
        "The box arrived crushed and the {product} is scratched.",
        "~How do I send the {product} back to you? Do you provide a return label?",
        "~Can I change the shipping address saved on my profile for this order?",
        "I was charged for express shipping but it's been {days} days. Where is it?",
        "The app says delivered but the order hasn't shown up.",
    ],
    "refund": [
        "I was charged twice, please refund the extra charge.",
        "My package never arrived, so I'd like my money back please.",
        "Please cancel my subscription and refund this month's payment.",
        "The app doesn't work on my {device} at all, so I want a refund for the {plan}.",
        "I deleted my account, can I get back the unused {amount} on my plan?",
        "The {product} arrived broken in the box. Refund please.",
        "My card was billed {amount} after I cancelled, I want that back.",
        "Invoice {invoice} overcharged me by {amount}, please return the difference.",
    ],
    "other": [
        "~What's your refund policy for gifts? Just asking before I buy.",
        "~Do you plan to support {integration} at some point?",
        "~How do you protect account data? Asking for our security review.",
        "~Love the products but it would be nice if shipping was faster.",
        "Your support took three days to reply about my refund. Not great.",
        "~Your checkout asks for my phone number, why do you need it? Just curious.",
        "~Is there a way to send feedback about the new app design?",
        "~Not a complaint, but why do my parcels always come in such huge boxes?",
    ],
}

# Two literal Jinja-looking texts (a customer pasting a broken template). Never run
# through the slot filler; the assertions below make sure no other text has braces.
JINJA_TEXTS = {
    "train": ("technical",
              'Your order confirmation emails are broken. Mine literally says "Hi {{ customer_name }}, '
              'thanks for your order {{ order_id }}!" instead of my name.'),
    "test": ("billing",
             "The invoice email I got this morning just says {% if plan == 'pro' %}Your Pro invoice{% endif %} "
             "and no amount. Can you resend the actual invoice for order #558213?"),
}

# Label-specific elaborations, appended to make some tickets long and chatty.
DETAILS = {
    "billing": [
        "I've checked my bank app twice.",
        "We're a small business so every charge matters.",
        "The previous invoices were all fine.",
        "I was told on chat it would be sorted but nothing has changed.",
        "I'd appreciate a clear answer this time.",
        "I'm happy to stay a customer, I just want this to make sense.",
    ],
    "technical": [
        "I've tried reinstalling, clearing the cache and restarting.",
        "It worked fine until last week.",
        "It happens on wifi and on mobile data.",
        "My colleague can reproduce it too.",
        "As far as I know I'm on the latest version.",
        "Happy to send logs or a screen recording.",
    ],
    "account": [
        "I can verify my identity if needed.",
        "My last order was on {date} so the account is definitely active.",
        "I've had this account for years.",
        "I'd rather not create a new account.",
        "Please confirm once it's done.",
    ],
    "shipping": [
        "I need it for a birthday on {date}.",
        "It's a gift so timing matters.",
        "I've been checking the tracking every day.",
        "I work from home so someone is always in.",
        "Please let me know what the next steps are.",
    ],
    "refund": [
        "I'd prefer the money back on the original payment method.",
        "I have the order confirmation email if you need it.",
        "I really don't want store credit.",
        "Please confirm once the refund is issued.",
        "I've been a loyal customer so this is disappointing.",
    ],
    "other": [
        "Keep up the good work.",
        "I've been recommending you to friends.",
        "Just curious.",
        "Love what you're doing.",
    ],
}

# Context sentences: CONTEXT_ANY fits any ticket, CONTEXT_PROBLEM only complaints.
CONTEXT_ANY = [
    "I've been a customer since {year}.",
    "My account email is {email}.",
    "I'm on the {plan}.",
    "No rush.",
    "Ref: {order} | {email}",
    "Please get back to me as soon as you can.",
]
CONTEXT_PROBLEM = [
    "I'm writing on behalf of my mum, it's her account.",
    "Order number is {order} in case you need it.",
    "I ordered through the app on my {device}.",
    "This is the second time I'm writing about this.",
    "I already checked the help centre.",
    "Screenshot attached.",
    "Bought the {product} on {date}.",
    "Tried calling but nobody picked up.",
    "My colleague {colleague} had the same problem last month.",
    "This happened on {date}.",
]

OPENERS = {
    "polite": ["Hi,", "Hello,", "Hi there,", "Hello team,", "Dear Support,", "Good morning,", "Good afternoon,",
               "Hey,", "<Bonjour,|Hallo,|Hola,>", "Hi team,", "Hope you're well.", "Hi support,"],
    "angry": ["This is ridiculous.", "Seriously?!", "I am beyond frustrated.", "I've had enough.",
              "Not impressed.", "Honestly, what is going on?", "Unbelievable.", "Still no answer from you."],
}
CLOSERS = {
    "polite": ["Thanks!", "Thank you.", "Thanks in advance.", "Many thanks, {name}", "Kind regards, {name}",
               "Cheers, {name}", "Best, {name}", "<Merci beaucoup!|Danke!|Gracias.>", "Appreciate it.",
               "Have a nice day!", "Thanks so much for your help.", "Thanks, {name}", "Regards, {name}",
               "Thank you for your time.", "Looking forward to hearing from you."],
    "angry": ["Fix it.", "Unacceptable.", "I expect a reply TODAY.", "Very disappointed.", "Sort it out.",
              "Worst service I've had in years.", "Considering a 1-star review.", "Not happy at all."],
    "terse": ["thx", "ty", "pls advise", "asap"],
}

MISSPELL = {
    "receive": "recieve", "received": "recieved", "definitely": "definately", "address": "adress",
    "account": "acount", "password": "pasword", "separate": "seperate", "tomorrow": "tommorow",
    "because": "becuase", "please": "plese", "invoice": "invocie", "arrived": "arived",
    "delivery": "delivary", "refund": "refnud", "which": "wich", "their": "thier", "until": "untill",
    "payment": "paymnet", "subscription": "subscripton", "charged": "chared", "anything": "anythign",
}
TERSE_SUBS = [(r"\bplease\b", "pls"), (r"\bthanks\b", "thx"), (r"\byou\b", "u"), (r"\bbecause\b", "bc")]

# ---------------------------------------------------------------------------
# Composition
# ---------------------------------------------------------------------------

ALT_RE = re.compile(r"<([^<>]*)>")
SLOT_RE = re.compile(r"\{(\w+)\}")


# Within one ticket these slots keep one value (one product, one order, ...).
MEMO_SLOTS = ("order", "product", "plan", "device", "email", "name", "city")
DISTINCT_FROM = {"product2": "product", "city2": "city"}
DISTINCT_POOLS = {"product2": PRODUCTS, "city2": CITIES}


def fill(r, template, memo=None):
    def slot(m):
        key = m.group(1)
        if memo is not None and key in DISTINCT_FROM and DISTINCT_FROM[key] in memo:
            pool = [v for v in DISTINCT_POOLS[key] if v != memo[DISTINCT_FROM[key]]]
            return r.choice(pool)
        if memo is None or key not in MEMO_SLOTS:
            return SLOTS[key](r)
        if key not in memo:
            memo[key] = SLOTS[key](r)
        return memo[key]

    text = ALT_RE.sub(lambda m: r.choice(m.group(1).split("|")), template)
    text = SLOT_RE.sub(slot, text)
    assert "{" not in text and "}" not in text and "<" not in text and ">" not in text, text
    return text


def add_typos(r, text):
    words = [m for m in re.finditer(r"[A-Za-z]{4,}", text)]
    if not words:
        return text
    k = 1 if r.random() < 0.7 else 2
    picks = sorted(r.sample(range(len(words)), min(k, len(words))), reverse=True)
    for i in picks:
        m = words[i]
        w = m.group(0)
        if w.lower() in MISSPELL and r.random() < 0.6:
            new = MISSPELL[w.lower()]
            if w[0].isupper():
                new = new[0].upper() + new[1:]
        else:
            j = r.randrange(1, len(w) - 1)
            op = r.randrange(3)
            if op == 0:
                new = w[:j] + w[j + 1] + w[j] + w[j + 2:]
            elif op == 1:
                new = w[:j] + w[j + 1:]
            else:
                new = w[:j] + w[j] + w[j:]
        text = text[: m.start()] + new + text[m.end():]
    return text


PROPER_WORDS = {w for values in (PRODUCTS, PLANS, DEVICES, BROWSERS, INTEGRATIONS, CARRIERS, CITIES, COUNTRIES,
                                  NAMES, COLLEAGUES, AGENTS, ["I", "I'm", "I'd", "I've", "VAT", "API", "GDPR"])
                for v in values for w in [v.split()[0]]}


def compose(r, label, template):
    calm = template.startswith("~")  # questions, praise, requests: no angry register
    memo = {}
    body = fill(r, template.lstrip("~"), memo)
    used = set(memo)  # slots the complaint itself already mentions

    def fresh(candidates):
        """Context sentences that don't repeat an order/product/plan/email already given."""
        return [c for c in candidates if not (set(SLOT_RE.findall(c)) & used)]

    weights = [38, 33, 0, 23] if calm else [34, 30, 15, 21]
    register = r.choices(["neutral", "polite", "angry", "terse"], weights=weights)[0]
    multiline = r.random() < NEWLINE_RATE
    opener = closer = ""
    if register == "polite":
        if r.random() < 0.75:
            opener = fill(r, r.choice(OPENERS["polite"]), memo)
        if r.random() < 0.7:
            closer = fill(r, r.choice(CLOSERS["polite"]), memo)
    elif register == "angry":
        if r.random() < 0.6:
            opener = r.choice(OPENERS["angry"])
        if r.random() < 0.6:
            closer = r.choice(CLOSERS["angry"])
        if r.random() < 0.5:
            body = re.sub(r"\.$", r.choice(["!", "!!", "!!!"]), body)
            body = re.sub(r"\?$", r.choice(["??", "?!", "???"]), body)
        if r.random() < 0.08:
            body = body.upper()
    elif register == "terse":
        body = body[0].lower() + body[1:]
        if r.random() < 0.5:
            body = body.lower()
        for pat, rep in TERSE_SUBS:
            if r.random() < 0.6:
                body = re.sub(pat, rep, body)
        body = body.rstrip(".!")
        if r.random() < 0.25:
            closer = r.choice(CLOSERS["terse"])
    if register != "terse" and (label == "other" or not calm):
        roll = r.random()
        k = 0 if roll > DETAIL_RATE else (1 if roll > LONG_RATE else r.randint(2, 3))
        extra = [fill(r, d, memo) for d in r.sample(DETAILS[label], k)]
        if k >= 2:
            extra.append(fill(r, r.choice(fresh(CONTEXT_ANY if calm else CONTEXT_PROBLEM)), memo))
        if register == "angry":
            extra = [re.sub(r"\.$", "!", d) if r.random() < 0.3 else d for d in extra]
        body = " ".join([body] + extra)
    if r.random() < CONTEXT_RATE and register != "terse":
        ctx = fill(r, r.choice(fresh(CONTEXT_ANY if calm else CONTEXT_ANY + CONTEXT_PROBLEM)), memo)
        if ctx not in body:
            body = f"{ctx} {body}" if r.random() < 0.3 else f"{body} {ctx}"

    if opener.endswith(",") and r.random() < 0.5 and body.split()[0] not in PROPER_WORDS:
        body = body[0].lower() + body[1:]
    if multiline:
        sentences = re.split(r"(?<=[.?!])\s+", body)
        if len(sentences) > 1:
            body = "\n".join(sentences)
        if not opener and not closer and len(sentences) == 1:
            closer = fill(r, r.choice(CLOSERS["polite"]), memo)
        if "," in closer and r.random() < 0.7:
            closer = closer.replace(", ", ",\n", 1)
        parts = [p for p in (opener, body, closer) if p]
        text = "\n\n".join(parts) if r.random() < 0.6 else "\n".join(parts)
    else:
        text = " ".join(p for p in (opener, body, closer) if p)

    text = text.replace(CURRENCY_MARK, r.choice(["$", "€", "£"]))
    if r.random() < EMOJI_RATE:
        text += " " + r.choice(EMOJI[register])
    if r.random() < TYPO_RATE:
        text = add_typos(r, text)
    return text


def norm_key(text):
    """Key for near-duplicate detection: case, punctuation and digits ignored."""
    return " ".join(re.findall(r"[^\W\d_]+", text.lower()))


def word_set(text):
    return frozenset(re.findall(r"[^\W\d_]+", text.lower()))


def jaccard(a, b):
    return len(a & b) / len(a | b) if a or b else 1.0


def generate():
    r = Random(SEED)
    seen_exact, seen_key, seen_sets = set(), set(), []
    splits = {}
    borderline_counts = {}
    pools = {}
    for label in LABELS:
        regular = list(TEMPLATES[label])
        border = list(BORDERLINE[label])
        r.shuffle(regular)
        r.shuffle(border)
        n_hold = round(HOLDOUT_RATE * len(regular))
        n_bt = round(BORDERLINE_TEST_SHARE * len(border))
        pools[("train", label)] = (border[n_bt:], regular[n_hold:])
        pools[("test", label)] = (border[:n_bt], regular)
    for split in ("train", "test"):
        items = []
        jinja_label, jinja_text = JINJA_TEXTS[split]
        for label in LABELS:
            n = COUNTS[split][label] - (1 if label == jinja_label else 0)
            n_border = round(BORDERLINE_RATE * COUNTS[split][label])
            borderline_counts[(split, label)] = n_border
            plan = []
            border_pool, regular_pool = pools[(split, label)]
            for pool, k in ((border_pool, n_border), (regular_pool, n - n_border)):
                order = []
                while len(order) < k:
                    cycle = list(range(len(pool)))
                    r.shuffle(cycle)
                    order.extend(cycle)
                plan.extend((pool, i) for i in order[:k])
            for pool, i in plan:
                for attempt in range(200):
                    template = pool[i] if attempt < 40 else r.choice(pool)
                    text = compose(r, label, template)
                    nw = len(text.split())
                    if not (MIN_WORDS <= nw <= MAX_WORDS):
                        continue
                    sentences = [x.lower() for x in re.split(r"(?<=[.?!])\s+", text)]
                    if len(sentences) != len(set(sentences)):
                        continue
                    key = norm_key(text)
                    if text in seen_exact or key in seen_key:
                        continue
                    ws = word_set(text)
                    if any(jaccard(ws, s) >= NEAR_DUP_JACCARD for s in seen_sets):
                        continue
                    break
                else:
                    raise RuntimeError(f"could not make a unique {label} ticket from {pool[i]!r}")
                seen_exact.add(text)
                seen_key.add(key)
                seen_sets.append(ws)
                items.append((text, label))
        assert jinja_text not in seen_exact
        seen_exact.add(jinja_text)
        items.append((jinja_text, jinja_label))
        r.shuffle(items)
        prefix = ID_PREFIX[split]
        splits[split] = [(f"{prefix}-{k + 1:04d}", t, l) for k, (t, l) in enumerate(items)]
    return splits, borderline_counts


# ---------------------------------------------------------------------------
# Checks and baseline
# ---------------------------------------------------------------------------

EMOJI_RE = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF]")


def check(splits):
    all_ids = [row[0] for rows in splits.values() for row in rows]
    assert len(all_ids) == len(set(all_ids)), "duplicate ids"
    texts = {s: [row[1] for row in rows] for s, rows in splits.items()}
    for s, ts in texts.items():
        assert len(ts) == len(set(ts)), f"duplicate text within {s}"
        c = Counter(row[2] for row in splits[s])
        assert c == Counter(COUNTS[s]), (s, c)
        assert min(c.values()) >= 25
        for t in ts:
            assert MIN_WORDS <= len(t.split()) <= MAX_WORDS, t
            assert "\r" not in t
        for name, pred in [("pipe", lambda t: "|" in t), ("double quote", lambda t: '"' in t),
                           ("comma", lambda t: "," in t), ("emoji", lambda t: EMOJI_RE.search(t)),
                           ("line break", lambda t: "\n" in t),
                           ("non-English word", lambda t: re.search(r"\b(Merci|Danke|Gracias|Bonjour|Hola|pedido|remboursement)\b", t))]:
            assert any(pred(t) for t in ts), f"{s} has no {name}"
    overlap = set(texts["train"]) & set(texts["test"])
    assert not overlap, f"train/test share texts: {sorted(overlap)[:3]}"
    braces = [t for ts in texts.values() for t in ts if "{" in t or "}" in t]
    assert len(braces) == 2 and all(("{{" in t) or ("{%" in t) for t in braces), braces


def features(text):
    toks = re.findall(r"\w+", text.lower())
    return toks + [f"{a} {b}" for a, b in zip(toks, toks[1:])]


def naive_bayes_accuracy(train, test):
    prior, counts, totals, vocab = Counter(), {l: Counter() for l in LABELS}, Counter(), set()
    for _, text, label in train:
        prior[label] += 1
        f = features(text)
        counts[label].update(f)
        totals[label] += len(f)
        vocab.update(f)
    v = len(vocab)
    correct = 0
    per_label = Counter()
    for _, text, label in test:
        f = features(text)
        best, best_score = None, -math.inf
        for l in LABELS:
            score = math.log(prior[l] / len(train))
            denom = totals[l] + v
            score += sum(math.log((counts[l][w] + 1) / denom) for w in f)
            if score > best_score:
                best, best_score = l, score
        if best == label:
            correct += 1
            per_label[label] += 1
    return correct / len(test), per_label


def write_csv(path, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "text", "label"])
    w.writerows(rows)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())


def main():
    splits, borderline = generate()
    check(splits)
    os.makedirs(OUT_DIR, exist_ok=True)
    for split, rows in splits.items():
        write_csv(os.path.join(OUT_DIR, f"{split}.csv"), rows)
    print(f"{'label':<10} {'train':>6} {'test':>6}   (borderline train/test)")
    for l in LABELS:
        ct = sum(1 for row in splits["train"] if row[2] == l)
        cs = sum(1 for row in splits["test"] if row[2] == l)
        print(f"{l:<10} {ct:>6} {cs:>6}   ({borderline[('train', l)]}/{borderline[('test', l)]})")
    print(f"{'total':<10} {len(splits['train']):>6} {len(splits['test']):>6}   "
          f"({sum(v for (s, _), v in borderline.items() if s == 'train')}/"
          f"{sum(v for (s, _), v in borderline.items() if s == 'test')})")
    acc, per_label = naive_bayes_accuracy(splits["train"], splits["test"])
    print(f"naive Bayes (unigrams+bigrams) test accuracy: {acc:.3f}")
    print("  per-label recall: " + ", ".join(
        f"{l} {per_label[l] / COUNTS['test'][l]:.2f}" for l in LABELS))


if __name__ == "__main__":
    main()
