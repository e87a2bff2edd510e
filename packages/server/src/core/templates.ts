/** What core needs to know about templates; templates/catalog.ts implements it. */
export interface TemplateInfo {
  name: string;
  description: string;
  digest: string;
  state: 'ready' | 'building' | 'missing' | 'error';
  defaultUser: string;
  sizeBytes: number | null;
  builtAt: string | null;
  error?: string;
}

export interface ResolvedTemplate {
  name: string;
  digest: string;
  rootfs: string;
  defaultUser: string;
}

export interface TemplateCatalog {
  list(): Promise<TemplateInfo[]>;
  /** The template's built layer, building it first if needed; null for an unknown name. */
  resolve(name: string): Promise<ResolvedTemplate | null>;
  names(): string[];
}
