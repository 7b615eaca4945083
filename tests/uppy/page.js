// The page tests/test_uppy_e2e.py drives: Uppy set up by examples/uppy/imgpress-uppy.ts (the module
// the docs tell front ends to copy), resuming across a reload. Everything else here only shows what
// happens, in #state's data attributes, for the test to read.
import { debugLogger } from '@uppy/core'
import { errorMessage, imgpressUppy } from '../../examples/uppy/imgpress-uppy.ts'

const params = new URLSearchParams(location.search)
const api = params.get('api')
const uppy = await imgpressUppy(api, { resume: true, uppy: { id: 'imgpress', autoProceed: true } })
if (params.has('debug')) uppy.setOptions({ logger: debugLogger })

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
uppy.on('restriction-failed', (file, error) => {
  set('refused', error.message)
  log(`refused ${error.message}`)
})
uppy.on('upload-error', (file, error) => {
  set('error', errorMessage(error))
  log(`error ${errorMessage(error)}`)
})
set('ready', true)

document.querySelector('#file').addEventListener('change', (event) => {
  for (const file of event.target.files) {
    try {
      uppy.addFile({ name: file.name, type: file.type, data: file, source: 'file input' })
    } catch {
      // a restriction: reported by 'restriction-failed' above
    }
  }
})
