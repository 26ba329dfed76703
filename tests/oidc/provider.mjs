// A real OpenID Provider for KEA's end-to-end tests: npm `oidc-provider` (certified by the OpenID
// Foundation) with OIDC discovery and a JWKS, and two clients:
//  - `kea-orders` gets JWT access tokens with the client-credentials grant (RFC 9068 `at+jwt`,
//    audience `orders`), for API clients;
//  - `kea-web` is the gateway's single sign-on client: authorization code + PKCE, refresh tokens,
//    RP-initiated logout, redirect URIs on the gateway origins given as the second argument
//    (comma-separated, e.g. `http://localhost:8080,http://127.0.0.1:8080`).
// Logins use the provider's development interactions (a login form that takes any user name).
//   node provider.mjs PORT [GATEWAY_ORIGINS]   prints "ready <issuer>" once it listens on 127.0.0.1
// KEA_OIDC_ACCESS_TTL sets the access-token lifetime in seconds (default 3600), so tests can make
// sessions expire and refresh.
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const gateways = (process.argv[3] ?? 'http://localhost:1').split(',');
const accessTtl = Number(process.env.KEA_OIDC_ACCESS_TTL ?? 3600);
const issuer = `http://127.0.0.1:${port}`;
const provider = new Provider(issuer, {
  clients: [{
    client_id: 'kea-orders',
    client_secret: 'kea-orders-secret-kea-orders-secret',
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['client_credentials'],
    redirect_uris: [],
    response_types: [],
    scope: 'orders:read orders:write',
  }, {
    client_id: 'kea-web',
    client_secret: 'kea-web-secret-kea-web-secret-kea-web',
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: gateways.map((origin) => `${origin}/oauth2/callback`),
    post_logout_redirect_uris: gateways.map((origin) => `${origin}/signed-out`),
  }],
  scopes: ['openid', 'email', 'orders:read', 'orders:write'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  // Claims of the requested scopes go into the ID token too (the gateway keeps them in the session).
  conformIdTokenClaims: false,
  async findAccount(ctx, sub) {
    return { accountId: sub, async claims() { return { sub, email: `${sub}@example.com`, email_verified: true }; } };
  },
  // The web client gets refresh tokens without `offline_access` + `prompt=consent`.
  async issueRefreshToken(ctx, client) { return client.grantTypeAllowed('refresh_token'); },
  ttl: { AccessToken: accessTtl, IdToken: accessTtl, Session: 3600, Grant: 3600, Interaction: 600, AuthorizationCode: 60, RefreshToken: 86400 },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client) => (client.clientId === 'kea-orders' ? 'https://orders.example/' : undefined),
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'orders:read orders:write',
        audience: 'orders',
        accessTokenFormat: 'jwt',
      }),
    },
  },
});
provider.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
