// A real OpenID provider (the `oidc-provider` package) on loopback for guestgate's OAuth2 tests.
//
//   node provider.mjs '{"client_id": "...", "client_secret": "...", "redirect_uri": "...", "tenant": "<guid>"}'
//
// Listens on 127.0.0.1 on a free port and prints one line, {"port": N}, once it accepts requests.
// Two issuers share the port:
//   http://127.0.0.1:N                    Google-like: discovery at /.well-known/openid-configuration
//   http://127.0.0.1:N/<tenant>/v2.0      Microsoft-like: id_tokens carry `tid`; the multi-tenant
//                                         discovery at /common/v2.0/.well-known/openid-configuration
//                                         names the issuer as the template .../{tenantid}/v2.0,
//                                         exactly as login.microsoftonline.com does.
// Sign-in uses oidc-provider's development interactions: a login form that takes any login and
// password (the login becomes the account id) and a consent page with "Continue" and a cancel
// link that answers access_denied. PKCE (S256) is required, so a client that forgets it fails.
import crypto from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

const options = JSON.parse(process.argv[2] || '{}');
for (const name of ['client_id', 'client_secret', 'redirect_uri', 'tenant']) {
  if (!options[name]) {
    console.error(`provider.mjs: missing "${name}" in the JSON argument`);
    process.exit(2);
  }
}

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwks = { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'guestgate-test', use: 'sig', alg: 'RS256' }] };

function nameOf(login) {
  const local = login.split('@')[0].replace(/[._-]+/g, ' ').trim();
  return local.replace(/\b\w/g, (letter) => letter.toUpperCase()) || 'Test Guest';
}

function emailOf(login) {
  return login.includes('@') ? login : `${login}@example.org`;
}

function configuration(cookiePrefix, claims, extraClaims) {
  return {
    clients: [{
      client_id: options.client_id,
      client_secret: options.client_secret,
      redirect_uris: [options.redirect_uri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    }],
    jwks,
    pkce: { required: () => true },
    claims,
    // The scope claims go into the id_token itself, as Google's and Microsoft's do.
    conformIdTokenClaims: false,
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, ...extraClaims(id) };
        },
      };
    },
    cookies: {
      keys: [crypto.randomBytes(32).toString('hex')],
      names: {
        session: `${cookiePrefix}_session`,
        interaction: `${cookiePrefix}_interaction`,
        resume: `${cookiePrefix}_resume`,
      },
    },
    features: { devInteractions: { enabled: true } },
  };
}

const server = http.createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const origin = `http://127.0.0.1:${port}`;
  const tenantPath = `/${options.tenant}/v2.0`;

  const google = new Provider(origin, configuration(
    'g',
    { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    (id) => ({ email: emailOf(id), email_verified: true, name: nameOf(id) }),
  ));
  // Work accounts often have no `email` claim: the address is the preferred_username.
  const azure = new Provider(`${origin}${tenantPath}`, configuration(
    'az',
    { openid: ['sub', 'tid'], profile: ['name', 'preferred_username'] },
    (id) => ({ tid: options.tenant, name: nameOf(id), preferred_username: emailOf(id) }),
  ));
  const googleHandler = google.callback();
  const azureHandler = azure.callback();

  server.on('request', async (req, res) => {
    try {
      if (req.url === '/common/v2.0/.well-known/openid-configuration') {
        const response = await fetch(`${origin}${tenantPath}/.well-known/openid-configuration`);
        const metadata = await response.json();
        metadata.issuer = `${origin}/{tenantid}/v2.0`;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(metadata));
        return;
      }
      if (req.url === tenantPath || req.url.startsWith(`${tenantPath}/`) || req.url.startsWith(`${tenantPath}?`)) {
        // Mounted under a path: oidc-provider derives its mount path from originalUrl.
        req.originalUrl = req.url;
        req.url = req.url.slice(tenantPath.length) || '/';
        azureHandler(req, res);
        return;
      }
      googleHandler(req, res);
    } catch (error) {
      console.error(error);
      res.writeHead(500);
      res.end();
    }
  });
  console.log(JSON.stringify({ port }));
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
