// The real Bluesky server software for the tests: @atproto/dev-env's TestNetwork
// (a PLC directory, a PDS and the AppView on the machine's Postgres and Redis;
// DB_POSTGRES_URL, DB_POSTGRES_SCHEMA, REDIS_HOST) on free ports, two accounts,
// then one JSON line with what the tests need.
// stdin: "process" -> waits until the AppView indexed everything (prints "ok");
// end of stdin -> closes the network and exits.
import readline from 'node:readline'
import { TestNetwork } from '@atproto/dev-env'

const env = process.env
const network = await TestNetwork.create({
  dbPostgresUrl: env.DB_POSTGRES_URL,
  dbPostgresSchema: env.DB_POSTGRES_SCHEMA,
  pds: { rateLimitsEnabled: env.RATE_LIMITS === '1' },
})
const sc = network.getSeedClient()
const accounts = {}
for (const name of ['campaign', 'asker']) {
  const handle = name === 'campaign' ? 'takeaction.test' : 'amina.test'
  const password = `${name}-password-for-tests`
  await sc.createAccount(name, { handle, email: `${name}@test.invalid`, password })
  accounts[name] = { did: sc.dids[name], handle, password }
}
const describe = await (await fetch(`${network.pds.url}/xrpc/com.atproto.server.describeServer`)).json()
console.log(JSON.stringify({
  pds: network.pds.url,
  appview: network.bsky.url,
  plc: network.plc.url,
  pdsDid: describe.did,
  accounts,
}))
const lines = readline.createInterface({ input: process.stdin })
for await (const line of lines) {
  if (line.trim() === 'process') {
    await network.processAll()
    console.log('ok')
  }
}
await network.close()
process.exit(0)
