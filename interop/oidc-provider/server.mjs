// A real, independent OAuth 2.0 authorization server for tower-bearer's interop tests,
// built on the `oidc-provider` package. See ../README.md for how to run it by hand.
//
// Usage: node server.mjs [--port N] [--exit-on-stdin-close]
//
// The port comes from `--port N`, else the PORT environment variable, else 0 (the system
// picks a free one). The server binds to 127.0.0.1 only. Once it accepts connections it
// prints exactly one line on stdout, the machine-readable contract the tests wait for:
//
//     LISTENING http://127.0.0.1:PORT
//
// (`https://` in the HTTPS mode described below), and the issuer is that URL. Everything else it prints goes to stderr. With
// `--exit-on-stdin-close` it exits when its stdin reaches end of file, so a test harness
// that dies without killing it does not leave it running.
//
// HTTPS with client certificates (RFC 8705 mutual TLS), off by default: when
// INTEROP_TLS_CERT and INTEROP_TLS_KEY hold the server's certificate and key (PEM), the
// server speaks HTTPS instead, asks every client for a certificate (`requestCert`), trusts
// client certificates issued by INTEROP_TLS_CA (PEM), prints `LISTENING https://...`, and
// enables oidc-provider's `features.mTLS` with `tls_client_auth` (subject DN matched against
// `tls_client_auth_subject_dn`) and `self_signed_tls_client_auth` (certificate matched by
// the `x5t#S256` of a key in the client's `jwks`). A client without a certificate still
// connects, so secret clients work as before; certificate checks happen at the token
// endpoint, as RFC 8705 section 2 describes.
//
// INTEROP_EXTRA_CLIENTS may hold a JSON array of more client metadata objects (RFC 7591
// names), e.g. a `private_key_jwt` client with the `jwks` of a key a test made.
//
// DPoP (RFC 9449, oidc-provider's `features.dPoP`) is on: a token request with a valid
// `DPoP` proof gets a DPoP-bound token (`cnf.jkt` at introspection). The `interop-dpop*`
// clients below are registered with `dpop_bound_access_tokens`, so they get nothing without
// a proof, and the nonce client must also carry a server nonce (RFC 9449 section 8).
//
// TEST-ONLY PATH, not part of oidc-provider: `POST /interop/seed-refresh-token?client_id=ID`
// mints a refresh token for that client with the provider's own Grant and RefreshToken
// models, as if a user had consented to `api:read api:write` in an authorization code flow.
// It lets the Rust tests exercise the refresh_token grant (with rotation and reuse
// detection, as oidc-provider implements them) without scripting a browser login. It
// answers `{"refresh_token": "..."}`. With `&jkt=THUMBPRINT` the refresh token is bound to
// that DPoP key, as oidc-provider binds the refresh tokens of public clients that used DPoP
// in the code exchange. Never copy it into a real deployment: it hands out refresh tokens
// to anybody who asks.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import process from 'node:process';

import Provider, { errors } from 'oidc-provider';

// The clients the Rust interop tests use; keep in sync with crates/tower-bearer-oauth2/tests/interop.rs.
const SCOPES = 'api:read api:write';
const CLIENTS = [
  {
    client_id: 'interop-basic',
    client_secret: 'interop-basic-secret',
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    client_id: 'interop-post',
    client_secret: 'interop-post-secret',
    token_endpoint_auth_method: 'client_secret_post',
  },
  {
    // For the refresh_token grant; its refresh tokens come from the test-only seeding path.
    client_id: 'interop-refresh',
    client_secret: 'interop-refresh-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['refresh_token'],
  },
  {
    // RFC 6749 section 2.3.1: a client that sends these with HTTP Basic must
    // form-urlencode both before joining them with `:`. Each character here breaks a
    // client that skips that step (`:` splits early, `%` and `+` decode wrongly, `&` and `=`
    // confuse naive parsers). Only visible ASCII and space: Appendix A of the RFC allows
    // nothing else in a client id or secret, and this server enforces that.
    client_id: 'id: with%odd+chars &=',
    client_secret: 's3cr:et%+ s&=',
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    // DPoP-bound tokens only (RFC 9449 section 5): a request without a proof is refused.
    client_id: 'interop-dpop',
    client_secret: 'interop-dpop-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    dpop_bound_access_tokens: true,
  },
  {
    // As `interop-dpop`, and every proof must carry a server nonce (see DPOP_NONCE_CLIENTS).
    client_id: 'interop-dpop-nonce',
    client_secret: 'interop-dpop-nonce-secret',
    token_endpoint_auth_method: 'client_secret_basic',
    dpop_bound_access_tokens: true,
  },
  {
    // A public client (RFC 6749 section 2.1) with DPoP, for the refresh_token grant: its
    // seeded refresh tokens are bound to a DPoP key, as oidc-provider binds those of public
    // clients, and work with no other key.
    client_id: 'interop-dpop-refresh',
    token_endpoint_auth_method: 'none',
    grant_types: ['refresh_token'],
    dpop_bound_access_tokens: true,
  },
];

// The clients whose DPoP proofs at the token endpoint must carry a server nonce.
const DPOP_NONCE_CLIENTS = new Set(['interop-dpop-nonce']);

// RFC 8707 resource indicators this server knows; a token asked for one of them is a JWT
// whose `aud` is the indicator. Any other indicator is refused with `invalid_target`.
const RESOURCE_SERVERS = new Map([
  ['https://api.interop.test/', { scope: SCOPES }],
]);

// Lifetimes in seconds: short, so a test can see a real lifetime, long enough for any test.
const ACCESS_TOKEN_TTL = 300;

function parseArgs(argv) {
  const options = { port: process.env.PORT ?? '0', exitOnStdinClose: false };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--port') {
      options.port = argv[i + 1];
      i += 1;
    } else if (arg.startsWith('--port=')) {
      options.port = arg.slice('--port='.length);
    } else if (arg === '--exit-on-stdin-close') {
      options.exitOnStdinClose = true;
    } else {
      throw new Error(`unknown argument \`${arg}\`; usage: node server.mjs [--port N] [--exit-on-stdin-close]`);
    }
  }
  const port = Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`the port must be a number from 0 to 65535, got \`${options.port}\``);
  }
  return { ...options, port };
}

function extraClients() {
  const raw = process.env.INTEROP_EXTRA_CLIENTS;
  if (!raw) return [];
  const parsed = JSON.parse(raw);
  if (!Array.isArray(parsed)) {
    throw new Error('INTEROP_EXTRA_CLIENTS must be a JSON array of client metadata objects');
  }
  return parsed;
}

// A fresh signing key per run: nothing outside this process ever trusts its tokens.
function signingKeys() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' }] };
}

// The server's TLS settings from the environment, or undefined for plain HTTP.
function tlsOptions() {
  const { INTEROP_TLS_CERT: cert, INTEROP_TLS_KEY: key, INTEROP_TLS_CA: ca } = process.env;
  if (!cert && !key) return undefined;
  if (!cert || !key || !ca) {
    throw new Error('HTTPS needs all of INTEROP_TLS_CERT, INTEROP_TLS_KEY and INTEROP_TLS_CA (PEM)');
  }
  // Unverified certificates are let through to the token endpoint, which refuses them for
  // tls_client_auth (certificateAuthorized) and matches self-signed ones by thumbprint.
  return { cert, key, ca, requestCert: true, rejectUnauthorized: false };
}

// oidc-provider's mTLS hooks, reading the certificate of the TLS connection.
function mutualTls() {
  const peerCertificate = (ctx) => {
    const socket = ctx.req.socket;
    const certificate = socket.getPeerX509Certificate?.();
    return certificate ?? undefined;
  };
  return {
    enabled: true,
    tlsClientAuth: true,
    selfSignedTlsClientAuth: true,
    getCertificate: peerCertificate,
    certificateAuthorized: (ctx) => ctx.req.socket.authorized === true,
    certificateSubjectMatches(ctx, property, expected) {
      const certificate = peerCertificate(ctx);
      if (!certificate || property !== 'tls_client_auth_subject_dn') return false;
      // Node prints the subject one attribute a line; RFC 4514 text of a one-attribute DN
      // such as `CN=billing` is the same.
      return certificate.subject.split('\n').join(',') === expected;
    },
  };
}

function configuration(tls) {
  const clients = [...CLIENTS, ...extraClients()].map((client) => ({
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    scope: SCOPES,
    ...client,
  }));
  return {
    clients,
    jwks: signingKeys(),
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    scopes: ['api:read', 'api:write'],
    // Every refresh rotates the refresh token; presenting a rotated one again is taken as
    // reuse and revokes the whole grant (oidc-provider's reuse detection).
    rotateRefreshToken: true,
    // Customizing this enables the refresh_token grant type; the seeding path is the only
    // way these tests get refresh tokens, so what it answers matters little.
    async issueRefreshToken(_ctx, client) {
      return client.grantTypeAllowed('refresh_token');
    },
    // The seeded refresh tokens belong to this one made-up account.
    async findAccount(_ctx, sub) {
      return { accountId: sub, async claims() { return { sub }; } };
    },
    clientAuthMethods: [
      'none',
      'client_secret_basic',
      'client_secret_post',
      'private_key_jwt',
      ...(tls ? ['tls_client_auth', 'self_signed_tls_client_auth'] : []),
    ],
    features: {
      ...(tls ? { mTLS: mutualTls() } : {}),
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      dPoP: {
        enabled: true,
        // A fresh secret per run: nonces are HMACs of the time step under it.
        nonceSecret: randomBytes(32),
        // Called after client authentication, so the client is known.
        requireNonce: (ctx) => DPOP_NONCE_CLIENTS.has(ctx.oidc.client?.clientId),
        // The default, spelled out: a proof's `jti` is accepted once.
        allowReplay: false,
      },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // No `resource` parameter: an opaque token, introspectable at this server.
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo(_ctx, resourceIndicator) {
          const server = RESOURCE_SERVERS.get(resourceIndicator);
          if (!server) {
            throw new errors.InvalidTarget(`unknown resource indicator \`${resourceIndicator}\``);
          }
          return {
            scope: server.scope,
            audience: resourceIndicator,
            accessTokenTTL: ACCESS_TOKEN_TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: 'RS256' } },
          };
        },
      },
    },
    ttl: {
      AccessToken: ACCESS_TOKEN_TTL,
      ClientCredentials: ACCESS_TOKEN_TTL,
    },
  };
}

// See the TEST-ONLY PATH note at the top.
const SEED_REFRESH_TOKEN_PATH = '/interop/seed-refresh-token';
const SEEDED_ACCOUNT = 'interop-user';

async function seedRefreshToken(provider, clientId, jkt) {
  const client = clientId ? await provider.Client.find(clientId) : undefined;
  if (!client) throw new Error(`unknown client \`${clientId}\``);
  if (!client.grantTypeAllowed('refresh_token')) {
    throw new Error(`client \`${clientId}\` may not use the refresh_token grant`);
  }
  const grant = new provider.Grant({ clientId: client.clientId, accountId: SEEDED_ACCOUNT });
  grant.addOIDCScope(SCOPES);
  const grantId = await grant.save();
  const refreshToken = new provider.RefreshToken({
    client,
    accountId: SEEDED_ACCOUNT,
    grantId,
    gty: 'authorization_code',
    scope: SCOPES,
    ...(jkt ? { jkt } : {}),
  });
  return refreshToken.save();
}

async function main() {
  const options = parseArgs(process.argv.slice(2));

  // Listen first: with port 0 the issuer URL is only known once the port is bound.
  let handler = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const tls = tlsOptions();
  const server = tls
    ? createTlsServer(tls, (req, res) => handler(req, res))
    : createServer((req, res) => handler(req, res));
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, '127.0.0.1', resolve);
  });
  const scheme = tls ? 'https' : 'http';
  const issuer = `${scheme}://127.0.0.1:${server.address().port}`;

  const provider = new Provider(issuer, configuration(tls));
  provider.on('server_error', (_ctx, error) => console.error('server_error:', error));
  const providerHandler = provider.callback();
  handler = (req, res) => {
    const url = new URL(req.url, issuer);
    if (url.pathname === SEED_REFRESH_TOKEN_PATH && req.method === 'POST') {
      seedRefreshToken(provider, url.searchParams.get('client_id'), url.searchParams.get('jkt'))
        .then((refreshToken) => {
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ refresh_token: refreshToken }));
        })
        .catch((error) => {
          res.statusCode = 400;
          res.setHeader('content-type', 'application/json');
          res.end(JSON.stringify({ error: 'seed_failed', error_description: error.message }));
        });
      return;
    }
    providerHandler(req, res);
  };

  if (options.exitOnStdinClose) {
    process.stdin.on('end', () => process.exit(0));
    process.stdin.on('error', () => process.exit(0));
    process.stdin.resume();
  }
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => process.exit(0));
  }

  process.stdout.write(`LISTENING ${issuer}\n`);
}

main().catch((error) => {
  console.error(`interop server failed to start: ${error.message}`);
  process.exit(1);
});
