#!/usr/bin/env python3
"""Mints JSON Web Tokens for KEA's auth end-to-end tests, with PyJWT and cryptography.

    mint.py keys DIR   generate the signing keys (private PEMs) and the public JWKS into DIR
    mint.py sign DIR   read JSON requests, one a line, on stdin; write one token a line on stdout

Keys (kid: algorithms): rsa: RS256 RS384 RS512 PS256 PS384 PS512; p256: ES256; p384: ES384;
ed25519: EdDSA; rsa-2: the RSA key after a rotation. DIR/jwks.json holds rsa, p256, p384 and
ed25519; DIR/jwks-rotated.json holds rsa-2, p256, p384 and ed25519. The RSA entries carry no
"alg" member (one key, several algorithms); the others do. DIR/rsa-public.pem is rsa's public key.

A sign request:
    {"alg": "RS256", "kid": "rsa", "claims": {...}, "header": {...}, "secret": "...", "no_kid": true,
     "attack": "hmac-with-public-key"}
- "kid" picks the signing key (default by "alg") and is put into the header, unless "header"
  sets its own "kid" or "no_kid" is true;
- "header" members are added to the header or override it ("typ", "crit", even "alg": the token
  is then signed with the request's "alg" but claims the header's);
- "secret" is the HMAC key for HS256/HS384/HS512;
- "alg": "none" makes an unsigned token (empty signature);
- "attack": "hmac-with-public-key" (with an HS* "alg") signs with HMAC keyed by the bytes of
  rsa-public.pem, the classic algorithm-confusion attack PyJWT itself refuses to perform.
Claims are serialized as given (compact JSON), never checked, so malformed claims can be tested.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import warnings

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms

# Tests may sign with short HMAC secrets on purpose.
warnings.simplefilter("ignore")

DEFAULT_KID = {
    "RS256": "rsa", "RS384": "rsa", "RS512": "rsa",
    "PS256": "rsa", "PS384": "rsa", "PS512": "rsa",
    "ES256": "p256", "ES384": "p384", "EdDSA": "ed25519",
}
HMAC_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
# kid -> alg member in the JWKS (None: no alg member).
KEYS = {"rsa": None, "rsa-2": None, "p256": "ES256", "p384": "ES384", "ed25519": "EdDSA"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact(value) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def public_jwk(kid: str, key) -> dict:
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    jwk.pop("alg", None)
    jwk.pop("key_ops", None)  # PyJWT adds it to RSA keys; RFC 7517 4.3: not with "use"
    jwk["kid"] = kid
    jwk["use"] = "sig"
    if KEYS[kid] is not None:
        jwk["alg"] = KEYS[kid]
    return jwk


def keys(directory: str) -> None:
    os.makedirs(directory, exist_ok=True)
    generated = {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "rsa-2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
    }
    for kid, key in generated.items():
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write(os.path.join(directory, f"{kid}.pem"), pem)
    write(
        os.path.join(directory, "rsa-public.pem"),
        generated["rsa"].public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    jwks = {kid: public_jwk(kid, key) for kid, key in generated.items()}
    current = [jwks[k] for k in ("rsa", "p256", "p384", "ed25519")]
    rotated = [jwks[k] for k in ("rsa-2", "p256", "p384", "ed25519")]
    write(os.path.join(directory, "jwks.json"), json.dumps({"keys": current}, indent=2).encode())
    write(os.path.join(directory, "jwks-rotated.json"), json.dumps({"keys": rotated}, indent=2).encode())


class Signer:
    def __init__(self, directory: str):
        self.directory = directory
        self.keys = {}
        self.algorithms = get_default_algorithms()
        self.jws = jwt.PyJWS()
        self._public_pem = None

    def key(self, kid: str):
        if kid not in self.keys:
            path = os.path.join(self.directory, f"{kid}.pem")
            if not os.path.exists(path):
                raise ValueError(f"no key {kid!r} in {self.directory}")
            with open(path, "rb") as f:
                self.keys[kid] = serialization.load_pem_private_key(f.read(), password=None)
        return self.keys[kid]

    def public_pem(self) -> bytes:
        if self._public_pem is None:
            with open(os.path.join(self.directory, "rsa-public.pem"), "rb") as f:
                self._public_pem = f.read()
        return self._public_pem

    def sign(self, request: dict) -> str:
        alg = request.get("alg")
        if not isinstance(alg, str):
            raise ValueError('"alg" is required')
        claims = request.get("claims", {})
        extra = request.get("header") or {}
        if not isinstance(extra, dict):
            raise ValueError('"header" must be an object')
        attack = request.get("attack")
        payload = compact(claims)

        if alg == "none":
            header = {"alg": "none", "typ": "JWT"}
            if "kid" in request and not request.get("no_kid"):
                header["kid"] = request["kid"]
            header.update(extra)
            return f"{b64url(compact(header))}.{b64url(payload)}."

        if attack == "hmac-with-public-key":
            if alg not in HMAC_HASHES:
                raise ValueError("the hmac-with-public-key attack needs an HS* alg")
            header = {"alg": alg, "typ": "JWT"}
            if not request.get("no_kid"):
                header["kid"] = request.get("kid", "rsa")
            header.update(extra)
            signing_input = f"{b64url(compact(header))}.{b64url(payload)}".encode()
            signature = hmac.new(self.public_pem(), signing_input, HMAC_HASHES[alg]).digest()
            return f"{signing_input.decode()}.{b64url(signature)}"
        if attack is not None:
            raise ValueError(f"unknown attack {attack!r}")

        if alg in HMAC_HASHES:
            secret = request.get("secret")
            if not isinstance(secret, str):
                raise ValueError(f'{alg} needs a "secret"')
            key = secret.encode()
            kid = request.get("kid")
        else:
            if alg not in DEFAULT_KID:
                raise ValueError(f"unsupported alg {alg!r}")
            kid = request.get("kid", DEFAULT_KID[alg])
            key = self.key(kid)

        header = {}
        if kid is not None and not request.get("no_kid"):
            header["kid"] = kid
        header.update(extra)
        if header.get("alg", alg) == alg and isinstance(header.get("kid", ""), str):
            # The usual path: PyJWT builds and signs the token.
            return self.jws.encode(payload, key, algorithm=alg, headers=header or None)
        # A header PyJWT would not write (an "alg" other than the signing one, a non-string
        # "kid"): assemble it here, still signing with PyJWT's algorithm.
        header = {"typ": "JWT", "alg": alg, **header}
        algorithm = self.algorithms[alg]
        signing_input = f"{b64url(compact(header))}.{b64url(payload)}".encode()
        signature = algorithm.sign(signing_input, algorithm.prepare_key(key))
        return f"{signing_input.decode()}.{b64url(signature)}"


_worker_signer = None


def _init_worker(directory: str) -> None:
    global _worker_signer
    _worker_signer = Signer(directory)


def _sign_line(item):
    number, line = item
    try:
        return True, _worker_signer.sign(json.loads(line))
    except Exception as e:  # noqa: BLE001 - report which request failed
        return False, f"mint.py: request {number}: {type(e).__name__}: {e}\n  {line.strip()[:500]}"


# RSA signing costs ~1 ms a token in one process: big batches are spread over the cores.
PARALLEL_FROM = 200


def sign(directory: str) -> None:
    lines = [(n, line) for n, line in enumerate(sys.stdin, start=1) if line.strip()]
    workers = min(os.cpu_count() or 1, 16)
    if len(lines) >= PARALLEL_FROM and workers > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(workers, _init_worker, (directory,)) as pool:
            results = pool.map(_sign_line, lines, chunksize=max(1, len(lines) // (workers * 8)))
    else:
        _init_worker(directory)
        results = map(_sign_line, lines)
    out = []
    for ok, value in results:
        if not ok:
            sys.exit(value)
        out.append(value + "\n")
    sys.stdout.write("".join(out))


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("keys", "sign"):
        sys.exit(__doc__)
    if sys.argv[1] == "keys":
        keys(sys.argv[2])
    else:
        sign(sys.argv[2])


if __name__ == "__main__":
    main()
