// Forms the replica set rs0 of one service's MongoDB, run by its `<service>-mongo-init` Job:
// `mongosh --nodb --quiet mongo-init.js` with MONGO_SET (the StatefulSet) and MONGO_MEMBERS.
// Idempotent: a set already formed is left as it is. Fails (and the Job retries) until every
// member answers.
const set = process.env.MONGO_SET;
const count = Number(process.env.MONGO_MEMBERS);
const hosts = [...Array(count).keys()].map((i) => `${set}-${i}.${set}:27017`);
for (const host of hosts) {
  new Mongo(host).getDB("admin").runCommand({ ping: 1 });
}
const admin = new Mongo(hosts[0]).getDB("admin");
const status = admin.runCommand({ replSetGetStatus: 1 });
if (status.ok === 1) {
  print(`${set}: replica set rs0 already formed`);
} else if (status.codeName === "NotYetInitialized") {
  const members = hosts.map((host, i) => ({ _id: i, host }));
  const result = admin.runCommand({ replSetInitiate: { _id: "rs0", members } });
  if (result.ok !== 1) throw new Error(JSON.stringify(result));
  print(`${set}: replica set rs0 formed of ${hosts.join(", ")}`);
} else {
  throw new Error(JSON.stringify(status));
}
