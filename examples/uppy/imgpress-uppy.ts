// Uppy 6 set up for an imgpress API (docs: the API, "Uppy"). Copy this file into your front end.
//
// - The limits come from the API (GET /upload-limits): Uppy refuses a file over the size limit,
//   or of a type the stage does not take, before sending anything.
// - Every file declares its size: the API refuses an over-size file before any part is sent, and
//   signs each part URL for its exact length.
// - The API's own error message reaches the user: Uppy 6 reports a refused request as
//   "Companion request failed: <status text>" and drops the body, so API answers are handed on
//   with their `error.message` as the status text (`errorMessage` strips Uppy's prefix).
// - A failed upload is aborted: S3 drops its parts and the image ends `failed` (`upload_aborted`).
//   Uppy itself keeps a failed multipart upload for a retry that would never be asked for.
import AwsS3 from '@uppy/aws-s3'
import Uppy, { type Body, type Meta, type UppyFile, type UppyOptions } from '@uppy/core'
import GoldenRetriever, { type GoldenRetrieverOptions } from '@uppy/golden-retriever'

/** What GET /upload-limits answers (the OpenAPI document's `UploadLimits`). */
export interface UploadLimits {
  max_upload_bytes: number
  content_types: string[]
  part_bytes: number
}

export interface ImgpressUppyOptions {
  /** A bearer token for stages whose API_AUTH is not `none`: sent to the API only, never to S3. */
  token?: () => string
  /** Keep files and their multipart uploads across a reload (Golden Retriever, in IndexedDB). */
  resume?: boolean
  /** Uppy's own options (`autoProceed`, `id`…); the restrictions are the API's. */
  uppy?: Omit<UppyOptions<Meta, Body>, 'restrictions'>
}

const UPPY_PREFIX = 'Companion request failed: '

/** An imgpress-ready Uppy: limits from `api`, sizes declared, API messages shown, failures aborted. */
export async function imgpressUppy(api: string, options: ImgpressUppyOptions = {}): Promise<Uppy<Meta, Body>> {
  explainApiErrors(api, options.token)
  const limits = await uploadLimits(api)
  const uppy = new Uppy<Meta, Body>({
    ...options.uppy,
    restrictions: { maxFileSize: limits.max_upload_bytes, allowedFileTypes: limits.content_types },
  })
  // Every file in parts (Uppy's default sends files under 100 MiB in one request, which cannot resume),
  // parts of exactly the size the API signs.
  uppy.use(AwsS3, { companionEndpoint: api, shouldUseMultipart: true, getChunkSize: () => limits.part_bytes })
  if (options.resume) {
    // Golden Retriever 6.0.0 keeps files up to 10 MiB unless told; its types omit the option.
    const indexedDB = { maxFileSize: limits.max_upload_bytes } as GoldenRetrieverOptions['indexedDB']
    uppy.use(GoldenRetriever, { indexedDB })
  }
  uppy.on('file-added', (file) => uppy.setFileMeta(file.id, { size: String(file.size) }))
  uppy.on('upload-error', (file) => {
    if (file) void abortUpload(uppy, api, file)
  })
  return uppy
}

/** GET /upload-limits: public, the same limits every upload route enforces. */
export async function uploadLimits(api: string): Promise<UploadLimits> {
  const answer = await fetch(`${api}/upload-limits`)
  if (!answer.ok) throw new Error(`${api}/upload-limits answered ${answer.status}`)
  return (await answer.json()) as UploadLimits
}

/** The API's message in an Uppy error, without Uppy's prefix. */
export function errorMessage(error: { message: string }): string {
  const { message } = error
  return message.startsWith(UPPY_PREFIX) ? message.slice(UPPY_PREFIX.length) : message
}

/**
 * Wraps `fetch` (which Uppy calls the API with) for the API's URLs only: adds the bearer token,
 * and gives each error answer the API's `error.message` as its status text. Call it once.
 */
export function explainApiErrors(api: string, token?: () => string): void {
  const plainFetch = window.fetch.bind(window)
  window.fetch = async (input, init = {}) => {
    const url = input instanceof Request ? input.url : String(input)
    if (!url.startsWith(api)) return plainFetch(input, init)
    const headers = new Headers(init.headers)
    if (token) headers.set('Authorization', `Bearer ${token()}`)
    const answer = await plainFetch(input, { ...init, headers })
    if (answer.ok) return answer
    const body: unknown = await answer.clone().json().catch(() => null)
    const message = (body as { error?: { message?: unknown } } | null)?.error?.message
    if (typeof message !== 'string') return answer
    // A status text is a reason phrase: printable ASCII here.
    const statusText = message.replace(/[^\x20-\x7e]/g, '?')
    return new Response(JSON.stringify(body), { status: answer.status, statusText, headers: answer.headers })
  }
}

/** DELETE /s3/multipart/{uploadId}?key=: S3 drops the parts, the image ends `failed`; a retry starts anew. */
async function abortUpload<M extends Meta, B extends Body>(uppy: Uppy<M, B>, api: string, file: UppyFile<M, B>) {
  // The event carries the file as it was when its upload began: its upload id is in Uppy's state.
  const started = uppy.getFile(file.id)?.s3Multipart
  if (!started) return // refused before an upload was started
  uppy.setFileState(file.id, { s3Multipart: undefined })
  const query = new URLSearchParams({ key: started.key })
  await fetch(`${api}/s3/multipart/${encodeURIComponent(started.uploadId)}?${query}`, { method: 'DELETE' })
}
