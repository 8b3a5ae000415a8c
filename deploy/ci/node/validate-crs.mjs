// Validates every monitoring.coreos.com/v1 object in rendered manifests against the
// prometheus-operator CRD schemas (kubernetes-validate only warns on CRD kinds).
// Usage: node validate-crs.mjs RENDERED.yaml...   Exit 1 on any invalid or unknown kind.
import { readFileSync } from 'node:fs';
import * as yaml from 'js-yaml';
import { ServiceMonitor, PodMonitor, PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';

const kinds = { ServiceMonitor, PodMonitor, PrometheusRule };
let failed = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const doc of yaml.loadAll(readFileSync(file, 'utf8'))) {
    if (!doc || doc.apiVersion !== 'monitoring.coreos.com/v1') continue;
    const name = `${doc.kind}/${doc.metadata?.name} in ${file}`;
    const Model = kinds[doc.kind];
    if (!Model) {
      console.error(`FAIL ${name}: no schema for this kind`);
      failed++;
      continue;
    }
    try {
      new Model(doc).validate();
      checked++;
      console.log(`ok   ${name}`);
    } catch (err) {
      failed++;
      console.error(`FAIL ${name}: ${err.message}`);
    }
  }
}
if (failed) process.exit(1);
if (!checked) {
  console.error('FAIL no monitoring.coreos.com/v1 object found: was the monitoring API given?');
  process.exit(1);
}
