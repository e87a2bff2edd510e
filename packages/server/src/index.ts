export { runServer, type ServerOptions, type RunningServer } from './server.js';
export { LocalTemplateCatalog } from './templates/catalog.js';
export { VERSION } from './version.js';
export { buildTemplates } from './templates/build-all.js';
export { exportTemplateOci } from './templates/export-oci.js';
export { defaultAgentBinary } from './server.js';
export type { KubernetesSettings } from './runtime/kubernetes/setup.js';
