// Check KEDA objects against KEDA's own schema: the OpenAPI schema of KEDA's CRDs, as the
// @kubernetes-models/keda package generates it from KEDA's Go API types.
//
//   node keda_validate.mjs --modules DIR FILE...
//
// DIR is the directory holding node_modules/ with this directory's package.json installed
// (scripts/test.sh puts it in .venv/node-keda). Each FILE holds YAML or JSON documents
// ("---" between them). Every document whose apiVersion is keda.sh/* must be a KEDA kind that
// passes its model's validate() and has no field its KEDA types lack; other documents (a
// Deployment) are skipped. Prints one line per error, "FILE: document N (Kind name):
// /json/path message", and exits 1 on any error, or when no file holds a KEDA object at
// all; 2 on bad usage.

import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

function usage(message) {
  console.error(`keda_validate: ${message}`);
  console.error("usage: node keda_validate.mjs --modules DIR FILE...");
  process.exit(2);
}

const args = process.argv.slice(2);
if (args[0] !== "--modules" || args.length < 3) {
  usage("give --modules DIR and at least one file");
}
const modules = join(resolve(args[1]), "node_modules");
const files = args.slice(2);

// The package is ESM-only and lives outside this script's directory: import it by path.
const models = join(modules, "@kubernetes-models", "keda", "keda.sh", "v1alpha1", "index.js");
let keda;
try {
  keda = await import(pathToFileURL(models).href);
} catch (error) {
  usage(`cannot load @kubernetes-models/keda from ${modules} (${error.message}); run scripts/test.sh`);
}
const YAML = createRequire(join(modules, "keda_validate.cjs"))("yaml");

// Every kind of the keda.sh group this package models.
const KINDS = {
  ScaledObject: keda.ScaledObject,
  ScaledJob: keda.ScaledJob,
  TriggerAuthentication: keda.TriggerAuthentication,
  ClusterTriggerAuthentication: keda.ClusterTriggerAuthentication,
};

// The schema lets unknown fields through, where the API server (kubectl's default
// --validate=strict) refuses them: the fields each KEDA type has, read from the package's
// type declarations, catch a misspelt one. Types from other groups (ObjectMeta, a Job spec)
// and free-form maps (trigger metadata) are not walked.
const PREFIX = "IComGithubKedacoreKedaV2ApisKedaV1alpha1";
function readFields(directory) {
  const types = new Map();
  for (const file of readdirSync(directory).filter((f) => f.endsWith(".d.ts"))) {
    const text = readFileSync(join(directory, file), "utf8");
    for (const [, name, body] of text.matchAll(/^export interface I(\w+)(?: extends \w+)? \{\n(.*?)^\}/gms)) {
      const fields = new Map();
      for (const [, field, type] of body.matchAll(/^ {4}"(\w+)"\??: (.*?);?$/gm)) {
        const ref = type.match(new RegExp(`^(?:Array<)?${PREFIX}(\\w+)>?$`));
        fields.set(field, ref ? ref[1] : null);
      }
      types.set(name, fields);
    }
  }
  return types;
}
const FIELDS = readFields(dirname(models));
if (!FIELDS.get("ScaledObjectSpec")?.has("triggers")) {
  usage(`cannot read the KEDA types' fields from ${dirname(models)}: a new package layout?`);
}

function unknownFields(value, type, path) {
  const fields = FIELDS.get(type);
  if (fields === undefined || value === null || typeof value !== "object") {
    return [];
  }
  if (Array.isArray(value)) {
    return value.flatMap((item, i) => unknownFields(item, type, `${path}/${i}`));
  }
  return Object.entries(value).flatMap(([key, item]) => {
    if (!fields.has(key)) {
      return [`${path}/${key} unknown field (${type} has ${[...fields.keys()].join(", ")})`];
    }
    return fields.get(key) ? unknownFields(item, fields.get(key), `${path}/${key}`) : [];
  });
}

function schemaErrors(Model, doc) {
  try {
    new Model(doc).validate();
    return [];
  } catch (error) {
    const details = Array.isArray(error.errors) ? error.errors : [];
    if (details.length === 0) {
      return [`/ ${error.message}`];
    }
    return details.map((e) => {
      // "must be integer" and "must have required property x" say it all; an enum's or a
      // pattern's message needs its parameters.
      const plain = ["type", "required"].includes(e.keyword) || !e.params;
      const extra = plain ? "" : ` ${JSON.stringify(e.params)}`;
      return `${e.instancePath || "/"} ${e.message ?? e.keyword}${extra}`;
    });
  }
}

function check(doc) {
  const Model = KINDS[doc.kind];
  if (doc.apiVersion !== "keda.sh/v1alpha1" || Model === undefined) {
    const known = Object.keys(KINDS).join(", ");
    return [`/ unknown KEDA object ${doc.apiVersion} ${doc.kind} (known: keda.sh/v1alpha1 ${known})`];
  }
  return [...schemaErrors(Model, doc), ...unknownFields(doc, doc.kind, "")];
}

let errors = 0;
let checked = 0;
for (const file of files) {
  let docs;
  try {
    docs = YAML.parseAllDocuments(readFileSync(file, "utf8"));
  } catch (error) {
    console.log(`${file}: cannot read: ${error.message}`);
    errors++;
    continue;
  }
  docs.forEach((parsed, index) => {
    const where = `${file}: document ${index + 1}`;
    if (parsed.errors.length) {
      parsed.errors.forEach((e) => console.log(`${where}: not YAML: ${e.message}`));
      errors += parsed.errors.length;
      return;
    }
    const doc = parsed.toJS();
    if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
      if (doc !== null) {
        console.log(`${where}: not a mapping`);
        errors++;
      }
      return;
    }
    if (typeof doc.apiVersion !== "string" || !doc.apiVersion.startsWith("keda.sh/")) {
      return;
    }
    checked++;
    const name = `${doc.kind} ${doc.metadata?.name ?? "(no name)"}`;
    for (const line of check(doc)) {
      console.log(`${where} (${name}): ${line}`);
      errors++;
    }
  });
}
if (checked === 0) {
  console.log(`no KEDA object (apiVersion keda.sh/...) in ${files.join(", ")}`);
  process.exit(1);
}
console.log(`${checked} KEDA object(s) checked, ${errors} error(s)`);
process.exit(errors ? 1 : 0);
