"""Corpora for the redactor: secrets embedded in prose (each must vanish), and innocent text
(each must survive unchanged).

The secrets are made here from a seeded generator, not written out: no live-looking credential
sits in the repository for a scanner to flag, yet each has the real shape (prefix, length,
alphabet, checksum) of its kind.
"""

from __future__ import annotations

import base64
import random
import string

_RNG = random.Random(20261208)
_ALNUM = string.ascii_letters + string.digits
_UPPER_DIGITS = string.ascii_uppercase + string.digits
_B64URL = _ALNUM + "-_"


def _pick(alphabet: str, n: int) -> str:
    """``n`` characters of ``alphabet``, with at least one digit, one lower and one upper case
    letter where the alphabet has them (as a generated key nearly always does)."""
    while True:
        out = "".join(_RNG.choice(alphabet) for _ in range(n))
        kinds = [
            set(alphabet) & set(s) for s in (string.digits, string.ascii_lowercase, string.ascii_uppercase)
        ]
        if all(not k or set(out) & k for k in kinds):
            return out


def _b64(nbytes: int, urlsafe: bool = False) -> str:
    raw = bytes(_RNG.randrange(256) for _ in range(nbytes))
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()
    return text.rstrip("=") if urlsafe else text


def _luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(_RNG.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        digits, total = body + check, 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def _iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(ch, 36)) for ch in moved)) % 97
    return f"{country}{check:02d}{bban}"


def _jwt() -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    sub = _pick(string.digits, 10)
    body = (
        base64.urlsafe_b64encode(f'{{"sub":"{sub}","name":"Ada","iat":1733616000}}'.encode())
        .decode()
        .rstrip("=")
    )
    return f"{header}.{body}.{_b64(32, urlsafe=True)}"


def _pem(label: str) -> str:
    body = _b64(600)
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {label}-----\n{lines}\n-----END {label}-----"


def _grouped(digits: str) -> str:
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


def _secrets() -> list[tuple[str, str, str]]:
    """(kind, secret, prose holding it): the kind is the placeholder expected."""
    aws_key = "AKIA" + _pick(_UPPER_DIGITS, 16)
    sts_key = "ASIA" + _pick(_UPPER_DIGITS, 16)
    aws_secret = _pick(_ALNUM + "+/", 40)
    ghp = "ghp_" + _pick(_ALNUM, 36)
    gho = "gho_" + _pick(_ALNUM, 36)
    pat = "github_pat_" + _pick(_ALNUM, 22) + "_" + _pick(_ALNUM, 59)
    slack_bot = "xoxb-" + _pick(string.digits, 12) + "-" + _pick(string.digits, 13) + "-" + _pick(_ALNUM, 24)
    slack_user = "xoxp-" + _pick(string.digits, 11) + "-" + _pick(string.digits, 12) + "-" + _pick(_ALNUM, 32)
    slack_hook = "T" + _pick(_UPPER_DIGITS, 8) + "/B" + _pick(_UPPER_DIGITS, 8) + "/" + _pick(_ALNUM, 24)
    stripe = "sk_" + "live_" + _pick(_ALNUM, 24)
    stripe_r = "rk_" + "live_" + _pick(_ALNUM, 24)
    openai = "sk-" + _pick(_ALNUM, 48)
    openai_proj = "sk-proj-" + _pick(_B64URL, 56)
    google = "AIza" + _pick(_B64URL, 35)
    bearer = _pick(_ALNUM, 40)
    jwt1, jwt2 = _jwt(), _jwt()
    rsa, ec, ssh = _pem("RSA PRIVATE KEY"), _pem("EC PRIVATE KEY"), _pem("OPENSSH PRIVATE KEY")
    pkcs8 = _pem("PRIVATE KEY")
    pw1, pw2, pw3 = "Tr0ub4dor&3x", "correct-horse-" + _pick(string.ascii_lowercase, 8), _pick(_ALNUM, 14)
    url_pw = _pick(_ALNUM, 16)
    tvwh = "tvwh_" + _b64(32, urlsafe=True)
    tvadm = "tvadm_" + _b64(32, urlsafe=True)
    basic = base64.b64encode(f"ada:{_pick(_ALNUM, 10)}".encode()).decode()
    negotiate = "YII" + _pick(_ALNUM, 20)
    tva = "tva_" + _b64(32, urlsafe=True)
    glpat = "glpat-" + _pick(_B64URL, 20)
    npm = "npm_" + _pick(_ALNUM, 36)
    hf = "hf_" + _pick(_ALNUM, 34)
    code = "-".join(_pick("0123456789ABCDEFGHJKMNPQRSTVWXYZ", 4) for _ in range(4))
    hex_key = _pick("0123456789abcdef", 40)
    b64_token = _pick(_ALNUM, 44)
    visa = _luhn_complete("4", 16)
    mc = _luhn_complete("53", 16)
    amex = _luhn_complete("37", 15)
    de_iban = _iban("DE", _pick(string.digits, 18))
    gb_iban = _iban("GB", "NWBK" + _pick(string.digits, 14))
    fr_iban = _iban("FR", _pick(string.digits, 23))
    sa_key = _pem("PRIVATE KEY").replace("\n", "\\n")
    query_key = _pick(_ALNUM, 24)
    glued_aws = "AKIA" + _pick(_UPPER_DIGITS, 16)
    return [
        ("PRIVATE_KEY", sa_key, f'{{"type": "service_account", "private_key": "{sa_key}\\n"}}'),
        ("SECRET", query_key, f"GET https://api.example.com/v2/items?limit=10&api_key={query_key}&page=2"),
        ("AWS_KEY", glued_aws, f"AWS_ACCESS_KEY_ID:{glued_aws}"),
        ("AWS_KEY", aws_key, f"Deploy with access key {aws_key} from the ops vault."),
        ("AWS_KEY", sts_key, f"The session used {sts_key}, which expires tonight."),
        ("AWS_SECRET", aws_secret, f"aws_secret_access_key = {aws_secret}\nregion = eu-west-1"),
        ("TOKEN", aws_secret[::-1], f"Someone pasted {aws_secret[::-1]} in the channel."),
        ("GITHUB_TOKEN", ghp, f"Clone it with {ghp} as the password."),
        ("GITHUB_TOKEN", gho, f"The OAuth app returned {gho}."),
        ("GITHUB_TOKEN", pat, f"export GH_TOKEN={pat}"),
        ("SLACK_TOKEN", slack_bot, f"Bot token: {slack_bot} (workspace acme)."),
        ("SLACK_TOKEN", slack_user, f"user {slack_user} posted it"),
        ("SLACK_TOKEN", slack_hook, f"Alerts go to https://hooks.slack.com/services/{slack_hook} now."),
        ("STRIPE_KEY", stripe, f"Charge cards with {stripe} in production."),
        ("STRIPE_KEY", stripe_r, f"restricted key {stripe_r}"),
        ("API_KEY", openai, f"OPENAI_API_KEY={openai}"),
        ("API_KEY", openai_proj, f"I tried {openai_proj} but got a 401."),
        ("API_KEY", google, f"Maps key {google} is restricted to our domain."),
        ("TOKEN", bearer, f"curl -H 'Authorization: Bearer {bearer}' https://api.example.com/v1"),
        ("JWT", jwt1, f"The cookie session={jwt1}; Path=/"),
        ("JWT", jwt2, f"Decoded {jwt2} on jwt.io and saw the user id."),
        ("PRIVATE_KEY", rsa, f"Here is the deploy key:\n{rsa}\nkeep it safe."),
        ("PRIVATE_KEY", ec, f"```\n{ec}\n```"),
        ("PRIVATE_KEY", ssh, f"~/.ssh/id_ed25519 holds\n{ssh}"),
        ("PRIVATE_KEY", pkcs8, f"key.pem: {pkcs8}"),
        ("PRIVATE_KEY", rsa.rsplit("\n", 3)[0], f"A truncated paste: {rsa.rsplit(chr(10), 3)[0]}"),
        ("SECRET", pw1, f'config = {{"password": "{pw1}", "user": "ada"}}'),
        ("SECRET", pw2, f"DB_PASSWORD={pw2}"),
        ("SECRET", pw3, f"secret: {pw3}"),
        ("SECRET", "sunshine", "wifi password: sunshine"),
        ("SECRET", "marmalade", "The password is: marmalade."),
        ("SECRET", pw3[::-1], f"mysql --password {pw3[::-1]} -h db"),
        ("CREDENTIALS", url_pw, f"DATABASE_URL=postgres://app:{url_pw}@db.internal:5432/prod"),
        ("WEBHOOK_SECRET", tvwh, f"The webhook secret is {tvwh}; store it in the CRM."),
        ("ADMIN_TOKEN", tvadm, f"truthvault-hub admin token {tvadm}"),
        ("ACCESS_TOKEN", tva, f"POST /v1/sync with Authorization: Bearer {tva}"),
        ("SECRET", basic, f"Authorization: Basic {basic}"),
        ("SECRET", negotiate, f"authorization = Negotiate {negotiate}"),
        ("ENROLMENT_CODE", code, f"Enrol the laptop with code {code} within 15 minutes."),
        ("TOKEN", hex_key, f"The signing key was {hex_key} until rotation."),
        ("TOKEN", b64_token, f"Use {b64_token} for the partner API."),
        ("API_KEY", glpat, f"GitLab: {glpat}"),
        ("API_KEY", npm, f"//registry.npmjs.org/:_authToken={npm}"),
        ("API_KEY", hf, f"HF_TOKEN is {hf}."),
        ("EMAIL", "josé.müller@exämple.de", "Schreiben Sie an josé.müller@exämple.de."),
        ("EMAIL", "élise@example.fr", "(élise@example.fr)"),
        ("EMAIL", "ada.lovelace@example.com", "Write to ada.lovelace@example.com about the engine."),
        ("EMAIL", "bob+invoices@mail.example.co.uk", "Invoices: bob+invoices@mail.example.co.uk."),
        ("EMAIL", "j_doe-42@sub.example.org", "<j_doe-42@sub.example.org> replied"),
        ("PHONE", "+44 20 7946 0958", "Call the London office on +44 20 7946 0958 after nine."),
        ("PHONE", "+1 (555) 010-4477", "US support: +1 (555) 010-4477."),
        ("PHONE", "+49 30 12345678", "Berlin: +49 30 12345678"),
        ("PHONE", "(555) 010-9876", "Her cell is (555) 010-9876, text first."),
        ("PHONE", "555-010-1234", "fax 555-010-1234"),
        ("PHONE", "020 7946 0123", "Landline 020 7946 0123 (evenings)."),
        ("PHONE", "01 23 45 67 89", "Paris: 01 23 45 67 89"),
        ("PHONE", "+33612345678", "WhatsApp +33612345678"),
        ("CARD", visa, f"Card {visa} exp 12/29"),
        ("CARD", _grouped(mc), f"Mastercard {_grouped(mc)} on file."),
        ("CARD", amex, f"amex:{amex}"),
        ("IBAN", de_iban, f"Pay to IBAN {de_iban} by Friday."),
        ("IBAN", _grouped(gb_iban), f"Account: {_grouped(gb_iban)}, ref 2026-12."),
        ("IBAN", fr_iban, f"IBAN {fr_iban}"),
    ]


#: (kind, secret, prose)
SECRETS = _secrets()

#: innocent text: each line must come out of the redactor unchanged
INNOCENT = [
    "The meeting is on 2026-12-07 at 14:30 (CET), and again on 07.12.2026 10:30.",
    "Released truthvault 0.13.2 on 2026-11-30; python 3.11.9 and PostgreSQL 16.4 are supported.",
    "Entity 550e8400-e29b-41d4-a716-446655440000 replaced 6ba7b810-9dad-11d1-80b4-00c04fd430c8.",
    "See /v1/entities/550e8400-e29b-41d4-a716-446655440000/history for the versions.",
    "UPPER CASE ID 550E8400-E29B-41D4-A716-446655440000 is the same entity.",
    "The invoice totals $1,234.56 (EUR 1.099,00), due in 30 days; 12 items at 19.99 each.",
    "Counts: 0, 1, 42, 1000, 65535, 123456789, 2147483647 and 1733616000000 ms since the epoch.",
    "Room 101, floor 3, building 7; order #88231; page 12 of 340.",
    "IP 192.168.1.10 and port 8080; 10.0.0.0/8 is private.",
    "## Notes\n\n- **Bold** and _italic_ text\n- [a link](https://example.com/docs/page)\n- `inline code`",
    "def total(items):\n    return sum(i.price for i in items)\n",
    "token = get_token()\npassword = os.environ['DB_PASSWORD']\napi_key = settings.api_key",
    "password = None  # set by the caller\nsecret: ${SECRET_FROM_ENV}\ntoken: '{{ vault_token }}'",
    "The bearer of this letter is a friend.",
    "Reset instructions were sent; the password field stays empty until then.",
    "git clone https://github.com/example/project.git && cd project",
    "ThisIsAVeryLongClassNameForTesting and src/truthvault/kernel/_automation.py",
    "A ratio of 3:2, a score of 21-19, and the years 1999-2026.",
    "Phone numbers are written like +CC area number; call me maybe.",
    "Shipping: 2-3 business days. ISBN 978-3-16-148410-0.",
    "Café, naïve, 東京, emoji 🎉 and ümlauts survive.",
    "SELECT id, name FROM entities WHERE updated_at > '2026-01-01' LIMIT 50;",
    "HTTP/1.1 200 OK\nContent-Type: application/json\nCache-Control: no-store",
    "Coordinates 48.8566, 2.3522 and temperature -3.5 °C.",
    "Stamped 2026-12-07T14:30:00.123Z; semver 1.2.3-rc.1+build.5; commit 7186fd9.",
    "def connect(url: str, api_key: str, token: SecretStr | None = None) -> Client: ...",
    "key: value\nkeys: 3\nprimary key = id\nmonkey: business",
    "Contact the team lead (see the wiki) for access.",
    # text about secrets that holds none (from this project's own docs and code)
    "The private keys as JSON bytes (secret: keep them in the device vault or wrapped).",
    'MIN_PASSPHRASE_LENGTH = 12\nPASSPHRASE_ENV = "TRUTHVAULT_RECOVERY_PASSPHRASE"\nSECRET_PREFIX = "tvwh_"',
    "tokenize = 'unicode61 remove_diacritics 2'",
    'if token == "-":\n    token = sys.stdin.readline().strip()',
    "  --token TEXT   The device token from 'truthvault hub device add'",
    "Without them it takes `Authorization: Bearer`: a `tva_` access token.",
    "# webhook secret: tvwh_...\ncurl -H 'Authorization: Bearer tvadm_...' http://127.0.0.1:8787/diagz",
    'assert letter.input == {"token": MASK}\nclient(token="t")',
]
