// The Uppy configuration a page needs for imgpress: @uppy/aws-s3 pointed at the API, and Golden
// Retriever so a reload resumes. Everything else here only shows what happens, for the test to read.
import AwsS3 from '@uppy/aws-s3'
import Uppy, { debugLogger } from '@uppy/core'
import GoldenRetriever from '@uppy/golden-retriever'

const params = new URLSearchParams(location.search)
const api = params.get('api')
const logger = params.has('debug') ? { logger: debugLogger } : {}
const uppy = new Uppy({ id: 'imgpress', autoProceed: true, ...logger })
  .use(AwsS3, {
    companionEndpoint: api,
    // Uppy's default sends files under 100 MiB in one POST; imgpress accepts parts for any size.
    shouldUseMultipart: true,
  })
  // Golden Retriever keeps files up to 10 MiB by default; imgpress takes up to MAX_UPLOAD_BYTES.
  .use(GoldenRetriever, { indexedDB: { maxFileSize: 64 * 1024 * 1024 } })

const log = (line) => {
  const item = document.createElement('li')
  item.textContent = line
  document.querySelector('#log').append(item)
}
const state = document.querySelector('#state')
const set = (name, value) => { state.dataset[name] = String(value) }

// Golden Retriever brings the file and its multipart upload back; no Dashboard asks, so confirm.
uppy.on('restored', () => {
  set('restored', true)
  log('restored')
  uppy.emit('restore-confirmed')
})
uppy.on('upload-progress', (file, progress) => {
  const percent = Math.round((100 * progress.bytesUploaded) / progress.bytesTotal)
  document.querySelector('#progress').value = percent
  const seen = new Set((state.dataset.progress || '').split(' ').filter(Boolean))
  seen.add(String(percent))
  set('progress', [...seen].join(' '))
})
uppy.on('s3-multipart:part-uploaded', (file, part) => {
  set('parts', Number(state.dataset.parts || 0) + 1)
  log(`part ${part.PartNumber} ${part.ETag}`)
})
uppy.on('upload-success', async (file, response) => {
  const id = response.body.key.split('/').pop() // the key is uploads/<image id>
  set('image', id)
  log(`uploaded ${id}`)
  const image = await (await fetch(`${api}/images/${id}?wait=25`)).json()
  set('status', image.status)
  log(`image ${image.status}`)
})
uppy.on('upload-error', (file, error) => {
  set('error', error.message)
  log(`error ${error.message}`)
})

document.querySelector('#file').addEventListener('change', (event) => {
  for (const file of event.target.files) {
    uppy.addFile({ name: file.name, type: file.type, data: file, source: 'file input' })
  }
})
