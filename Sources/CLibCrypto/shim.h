#ifndef ONCE_CLIBCRYPTO_SHIM_H
#define ONCE_CLIBCRYPTO_SHIM_H
// SCRAM's primitives (HMAC, SHA-256/512, PBKDF2) and the random bytes for nonces and salts, from
// the system's OpenSSL libcrypto: no Swift crypto package, so a package that depends on
// OnceClient resolves none.
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#endif
