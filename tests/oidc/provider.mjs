// A real OpenID Provider for KEA's end-to-end tests: npm `oidc-provider` (certified by the OpenID
// Foundation) with OIDC discovery, a JWKS, and one client that gets JWT access tokens with the
// client-credentials grant (RFC 9068 `at+jwt`, audience `orders`).
//   node provider.mjs PORT      prints "ready <issuer>" once it listens on 127.0.0.1:PORT
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
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
  }],
  scopes: ['orders:read', 'orders:write'],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => 'https://orders.example/',
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
